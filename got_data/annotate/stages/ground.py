"""Grounding: a box for each entity phrase, asked with the same image first so its prefix is reused."""

from __future__ import annotations

import asyncio

from got_data.annotate.grounding import (
    QWEN2_VL_BOX_REGEX,
    QWEN25_VL,
    GroundingParseError,
    parse_qwen2_vl,
    parse_qwen25_vl,
)
from got_data.annotate.stage import Stage, StageReject

QWEN25_BOX_SCHEMA = {
    "type": "object",
    "properties": {
        "bbox_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10000}, "minItems": 4, "maxItems": 4},
        "label": {"type": "string", "maxLength": 80},
    },
    "required": ["bbox_2d", "label"],
    "additionalProperties": False,
}


class Ground(Stage):
    name = "ground"
    role = "vlm"
    reads = ("model_image", "entities")
    writes = ("groundings", "dropped")

    async def run(self, work, models) -> None:
        answers = await asyncio.gather(*(self._ground(work, models, phrase) for phrase in work.entities))
        work.groundings = [(phrase, boxes) for phrase, boxes in zip(work.entities, answers) if boxes]
        if not work.groundings:
            raise StageReject(self.name, "no_grounded_object", "; ".join(f"{p}: {r}" for p, r in work.dropped))

    async def _ground(self, work, models, phrase: str):
        qwen25 = self.family == QWEN25_VL
        text = await models.ask(
            self, work, values={"phrase": phrase}, images=[work.model_image],
            json_schema=QWEN25_BOX_SCHEMA if qwen25 else None, regex=None if qwen25 else QWEN2_VL_BOX_REGEX,
            skip_special_tokens=False, reject_on_failure=False,
        )
        if text is None:
            work.dropped.append((phrase, "model_failure"))
            return []
        try:
            if qwen25:
                width, height = work.model_image_size
                pixels = models.pixel_bounds(self.role)
                return parse_qwen25_vl(text, width, height, *pixels)
            return parse_qwen2_vl(text)
        except GroundingParseError as exc:
            work.dropped.append((phrase, exc.reason))
            return []
