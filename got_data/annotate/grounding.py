"""Parse the grounding answers of each model family into relative GoT boxes.

Qwen2-VL writes `(x1,y1),(x2,y2)` in relative [0,1000) coordinates, usually between its
`<|box_start|>`/`<|box_end|>` tokens; Qwen2.5-VL writes JSON `{"bbox_2d": [x1,y1,x2,y2]}` in pixels of
the image as its processor resized it (`smart_resize`).
"""

from __future__ import annotations

import json
import re

from got_data.records.boxes import BOX_TEXT_RE, Box, qwen25_abs_to_rel

# Only the relative-coordinate regex the grounding stage constrains Qwen2-VL's answer to.
QWEN2_VL_BOX_REGEX = r"\([0-9]{1,3},[0-9]{1,3}\),\([0-9]{1,3},[0-9]{1,3}\)"
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class GroundingParseError(ValueError):
    """The answer holds no usable box; `reason` is a stable string for the rejects table."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_qwen2_vl(text: str) -> list[Box]:
    """All valid boxes in a Qwen2-VL answer, in order. Corners written in the other order denote the
    same rectangle and are put in order; empty or out-of-range boxes are skipped."""
    boxes = []
    for match in BOX_TEXT_RE.finditer(text):
        x1, y1, x2, y2 = map(int, match.groups())
        try:
            boxes.append(Box(x1=min(x1, x2), y1=min(y1, y2), x2=max(x1, x2), y2=max(y1, y2)))
        except ValueError:
            continue
    if not boxes:
        reason = "invalid_box" if BOX_TEXT_RE.search(text) else "no_box_in_answer"
        raise GroundingParseError(reason, text[:200])
    return boxes


def parse_qwen25_vl(text: str, width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> list[Box]:
    """Boxes of a Qwen2.5-VL JSON answer (one object or a list), converted from the resized image's
    pixels to relative coordinates of a width x height image."""
    block = _JSON_BLOCK.search(text)
    try:
        data = json.loads(block.group(1) if block else text)
    except json.JSONDecodeError as exc:
        raise GroundingParseError("unparsable_answer", f"{exc}: {text[:200]}") from exc
    items = data if isinstance(data, list) else [data]
    kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    boxes = []
    for item in items:
        coords = item.get("bbox_2d") if isinstance(item, dict) else None
        if not (isinstance(coords, list) and len(coords) == 4 and all(isinstance(v, (int, float)) for v in coords)):
            continue
        try:
            boxes.append(qwen25_abs_to_rel(tuple(coords), width, height, **kwargs))
        except ValueError:
            continue
    if not boxes:
        raise GroundingParseError("no_box_in_answer", text[:200])
    return boxes


def merge_near_duplicates(boxes: list[Box], iou_threshold: float = 0.85) -> list[Box]:
    """Keep the first of any group of boxes overlapping above the threshold (one object, said twice)."""
    kept: list[Box] = []
    for box in boxes:
        if all(box.iou(other) < iou_threshold for other in kept):
            kept.append(box)
    return kept
