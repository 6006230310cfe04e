"""The grounding answer format: every instance a phrase names, in each model family's own multi-box
form, as a decoding constraint and as parsed relative GoT boxes.

- Qwen2-VL (`box_spans`): `<|object_ref_start|>phrase<|object_ref_end|>` then one
  `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` span per instance, relative [0,1000) coordinates; the
  reference with no span says the phrase is not in the picture.
- Qwen2.5-VL (`bbox_json_list`): a JSON list of `{"bbox_2d": [x1,y1,x2,y2], "label": phrase}` in
  pixels of the image as its processor resized it (`smart_resize`); the empty list: not there.

Both are bounded (`max_boxes`, a stage option) and merged where boxes of one phrase overlap beyond
the spec's IoU. Asked about all of an image's phrases at once (`requests: per_image`), the answer is
the same per phrase, in the order asked: the phrases' Qwen2-VL answers one after the other, or one
Qwen2.5-VL list whose labels name the phrases; `resolve_shared_objects` settles one object claimed by two phrases. The single-box
answer that came before (`one_box`: a bare `(x1,y1),(x2,y2)`, one `{"bbox_2d", "label"}` object, no
"not there") stays for models trained on it, and for the tiny specs' random weights (one short answer).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from got_data.families import family
from got_data.records.boxes import BOX_TEXT_RE, Box, qwen25_abs_to_rel

QWEN2_VL_BOX_REGEX = r"\([0-9]{1,3},[0-9]{1,3}\),\([0-9]{1,3},[0-9]{1,3}\)"
OBJECT_REF_START, OBJECT_REF_END = "<|object_ref_start|>", "<|object_ref_end|>"
BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"
ONE_BOX_SECTION = "user_one_box"  # the prompt section of the single-box question (`one_box`)
ALL_PHRASES_SECTION = "user_all_phrases"  # the prompt section asking about every phrase at once (`per_image`)
NOT_THERE = "not_there"  # the dropped-phrase reason of an answer that gives no box on purpose
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_REF_ONLY = re.compile(r"\s*" + re.escape(OBJECT_REF_START) + r".*?" + re.escape(OBJECT_REF_END) + r"\s*(<\|im_end\|>)?\s*",
                       re.DOTALL)
_REGEX_ESCAPES = str.maketrans({c: "\\" + c for c in "\\.^$*+?{}[]|()"})


class GroundingParseError(ValueError):
    """The answer holds no usable box; `reason` is a stable string for the rejects table."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AnswerConstraint:
    """What a grounding request constrains its answer to: a JSON schema or a regex."""

    json_schema: dict[str, Any] | None = None
    regex: str | None = None


def regex_literal(text: str) -> str:
    """`text` as a regex matching itself; spaces stay plain (the grammar backend refuses `\\ `)."""
    return text.translate(_REGEX_ESCAPES)


@functools.lru_cache(maxsize=4096)
def qwen2_vl_answer_regex(phrase: str, max_boxes: int) -> str:
    """The reference to `phrase` then 0..max_boxes box spans."""
    ref = regex_literal(OBJECT_REF_START + phrase + OBJECT_REF_END)
    span = regex_literal(BOX_START) + QWEN2_VL_BOX_REGEX + regex_literal(BOX_END)
    return f"{ref}({span}){{0,{max_boxes}}}"


def qwen25_vl_answer_schema(phrase: str, max_boxes: int) -> dict[str, Any]:
    """A JSON list of 0..max_boxes `{"bbox_2d": [4 integers], "label": phrase}` objects."""
    item = {
        "type": "object",
        "properties": {
            "bbox_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10000},
                        "minItems": 4, "maxItems": 4},
            "label": {"type": "string", "enum": [phrase]},
        },
        "required": ["bbox_2d", "label"],
        "additionalProperties": False,
    }
    return {"type": "array", "items": item, "minItems": 0, "maxItems": max_boxes}


QWEN25_ONE_BOX_SCHEMA = {
    "type": "object",
    "properties": {
        "bbox_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10000}, "minItems": 4, "maxItems": 4},
        "label": {"type": "string", "maxLength": 80},
    },
    "required": ["bbox_2d", "label"],
    "additionalProperties": False,
}


def answers_in_json(family_name: str | None) -> bool:
    """Whether the family grounds in Qwen2.5-VL's JSON list of pixel boxes (else Qwen2-VL's spans)."""
    return family_name is not None and family(family_name).grounding_answer == "bbox_json_list"


def answer_constraint(family_name: str | None, phrase: str, max_boxes: int, one_box: bool = False) -> AnswerConstraint:
    """The constraint of a grounding answer about `phrase` for the stage's model family: every
    instance, or with `one_box` the single-box answer."""
    if answers_in_json(family_name):
        return AnswerConstraint(json_schema=QWEN25_ONE_BOX_SCHEMA if one_box else qwen25_vl_answer_schema(phrase, max_boxes))
    return AnswerConstraint(regex=QWEN2_VL_BOX_REGEX if one_box else qwen2_vl_answer_regex(phrase, max_boxes))


def all_phrases_constraint(family_name: str | None, phrases: list[str], max_boxes: int) -> AnswerConstraint:
    """The constraint of one answer about every phrase, in the order asked: each phrase's own
    multi-box answer in turn (Qwen2-VL), or one list of up to `max_boxes` per phrase whose labels are
    the phrases (Qwen2.5-VL)."""
    if answers_in_json(family_name):
        schema = qwen25_vl_answer_schema(phrases[0], max_boxes * len(phrases))
        schema["items"]["properties"]["label"]["enum"] = list(dict.fromkeys(phrases))
        return AnswerConstraint(json_schema=schema)
    return AnswerConstraint(regex="".join(qwen2_vl_answer_regex(p, max_boxes) for p in phrases))


def numbered_phrases(phrases: list[str]) -> str:
    """The phrases as the per-image question lists them: one per line, numbered in the order asked."""
    return "\n".join(f"{n}. {phrase}" for n, phrase in enumerate(phrases, 1))


def phrases_of_numbered(text: str) -> list[str]:
    """The phrases a per-image question lists (`numbered_phrases` read back), for the world's oracle."""
    return [line.partition(". ")[2] for line in text.splitlines()]


PhraseAnswer = list[Box] | GroundingParseError  # the boxes of one phrase, or why it has none


def split_qwen2_vl_answer(text: str, phrases: list[str]) -> list[PhraseAnswer]:
    """Per phrase asked, its boxes in an answer about every phrase (Qwen2-VL): the text from each
    phrase's reference up to the next reference, parsed as that phrase's own answer. A phrase the
    answer never names has `no_box_in_answer`."""
    found: dict[str, str] = {}
    for part in text.split(OBJECT_REF_START)[1:]:
        label, _, _ = part.partition(OBJECT_REF_END)
        found.setdefault(label, OBJECT_REF_START + part)
    return [_answer(parse_qwen2_vl, found[p]) if p in found
            else GroundingParseError("no_box_in_answer", f"{p!r} not named in {text[:200]}") for p in phrases]


def split_qwen25_vl_answer(text: str, phrases: list[str], width: int, height: int, min_pixels: int | None,
                           max_pixels: int | None) -> list[PhraseAnswer]:
    """Per phrase asked, its boxes in one Qwen2.5-VL list about every phrase, grouped by label; a
    phrase with no item is "not there". An answer that is no JSON list fails every phrase alike."""
    try:
        data = _json_answer(text)
    except GroundingParseError as failure:
        return [failure for _ in phrases]
    by_label: dict[str, list[Any]] = {}
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict) and isinstance(item.get("label"), str):
            by_label.setdefault(item["label"], []).append(item)
    return [_answer(qwen25_vl_boxes, by_label.get(p, []), text, width, height, min_pixels, max_pixels)
            for p in phrases]


def _answer(parse: Any, *args: Any) -> PhraseAnswer:
    """`parse(*args)`, or the GroundingParseError it raised."""
    try:
        return parse(*args)
    except GroundingParseError as exc:
        return exc


def qwen2_vl_answer(phrase: str, boxes: list[Box]) -> str:
    """The Qwen2-VL answer naming `boxes` for `phrase` (no box: not there), as the constraint allows."""
    return OBJECT_REF_START + phrase + OBJECT_REF_END + "".join(BOX_START + b.render() + BOX_END for b in boxes)


def parse_qwen2_vl(text: str) -> list[Box]:
    """All valid boxes in a Qwen2-VL answer, in order. Corners written in the other order denote the
    same rectangle and are put in order; empty or out-of-range boxes are skipped. A reference with no
    box is the answer "not there" (GroundingParseError with reason `not_there`)."""
    boxes = []
    for match in BOX_TEXT_RE.finditer(text):
        x1, y1, x2, y2 = map(int, match.groups())
        try:
            boxes.append(Box(x1=min(x1, x2), y1=min(y1, y2), x2=max(x1, x2), y2=max(y1, y2)))
        except ValueError:
            continue
    if not boxes:
        if _REF_ONLY.fullmatch(text):
            raise GroundingParseError(NOT_THERE, text[:200])
        reason = "invalid_box" if BOX_TEXT_RE.search(text) else "no_box_in_answer"
        raise GroundingParseError(reason, text[:200])
    return boxes


def parse_grounding_answer(text: str, family_name: str | None, width: int, height: int, min_pixels: int | None,
                           max_pixels: int | None) -> list[Box]:
    """The boxes of one phrase's grounding answer about a width x height image, read in the family's
    own convention (`parse_qwen25_vl` or `parse_qwen2_vl`); GroundingParseError when it has none."""
    if answers_in_json(family_name):
        return parse_qwen25_vl(text, width, height, min_pixels, max_pixels)
    return parse_qwen2_vl(text)


def _json_answer(text: str) -> Any:
    """The JSON of a Qwen2.5-VL answer, inside a ```json block or bare; `unparsable_answer` otherwise."""
    block = _JSON_BLOCK.search(text)
    try:
        return json.loads(block.group(1) if block else text)
    except json.JSONDecodeError as exc:
        raise GroundingParseError("unparsable_answer", f"{exc}: {text[:200]}") from exc


def parse_qwen25_vl(text: str, width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> list[Box]:
    """Boxes of a Qwen2.5-VL JSON answer (one object or a list), converted from the resized image's
    pixels to relative coordinates of a width x height image. The empty list is "not there"."""
    data = _json_answer(text)
    return qwen25_vl_boxes(data if isinstance(data, list) else [data], text, width, height, min_pixels, max_pixels)


def qwen25_vl_boxes(items: list[Any], text: str, width: int, height: int, min_pixels: int | None,
                    max_pixels: int | None) -> list[Box]:
    """The boxes of parsed Qwen2.5-VL answer items (`text`: the answer, for the reject detail); no
    item is "not there", items without a usable box `no_box_in_answer`."""
    if not items:
        raise GroundingParseError(NOT_THERE, text[:200])
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


def distinct_box_indices(boxes: list[Box], iou_threshold: float = 0.85) -> list[int]:
    """Indices of the first of any group of boxes overlapping above the threshold (one object, said twice)."""
    kept: list[int] = []
    for n, box in enumerate(boxes):
        if all(box.iou(boxes[other]) < iou_threshold for other in kept):
            kept.append(n)
    return kept


def merge_near_duplicates(boxes: list[Box], iou_threshold: float = 0.85) -> list[Box]:
    """Keep the first of any group of boxes overlapping above the threshold (one object, said twice)."""
    return [boxes[n] for n in distinct_box_indices(boxes, iou_threshold)]


def names_more_specifically(specific: str, general: str) -> bool:
    """Whether `specific` names what `general` names and more: the words of `general` are a run of
    the words of `specific` ("brown dog" over "dog", "the dog on the left" over "the dog")."""
    a, b = specific.lower().split(), general.lower().split()
    return len(a) > len(b) and any(a[i : i + len(b)] == b for i in range(len(a) - len(b) + 1))


CLAIMED_BY_OTHER_PHRASE = "claimed_by_other_phrase"


def resolve_shared_objects(groundings: list[tuple[str, list[Box]]], iou_threshold: float
                           ) -> tuple[list[tuple[str, list[Box]]], list[tuple[str, str]]]:
    """One object claimed by two phrases ("dog" and "brown dog" both box the same dog): the more
    specific phrase (`names_more_specifically`) keeps the box, the general one loses it; a phrase left
    with no box is dropped with reason `claimed_by_other_phrase`. Two unrelated phrases on one box
    ("red circle", "blue square") both keep it: which one is wrong is not for the text to say (the
    verify stage judges). Returns the groundings (phrases in their order) and the dropped phrases."""
    lost: dict[int, set[int]] = {i: set() for i in range(len(groundings))}
    for i, (general, general_boxes) in enumerate(groundings):
        for j, (specific, specific_boxes) in enumerate(groundings):
            if i == j or not names_more_specifically(specific, general):
                continue
            for k, box in enumerate(general_boxes):
                if any(box.iou(other) >= iou_threshold for other in specific_boxes):
                    lost[i].add(k)
    kept: list[tuple[str, list[Box]]] = []
    dropped: list[tuple[str, str]] = []
    for i, (phrase, boxes) in enumerate(groundings):
        remaining = [b for k, b in enumerate(boxes) if k not in lost[i]]
        if remaining:
            kept.append((phrase, remaining))
        else:
            dropped.append((phrase, CLAIMED_BY_OTHER_PHRASE))
    return kept, dropped
