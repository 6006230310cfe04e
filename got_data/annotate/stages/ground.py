"""Grounding: a box for each entity phrase, asked with the same image first so its prefix is reused."""

from __future__ import annotations

import asyncio

from got_data.annotate.grounding import (
    QWEN2_VL_BOX_REGEX,
    GroundingParseError,
    parse_qwen2_vl,
    parse_qwen25_vl,
)
from got_data.annotate.stage import Stage, StageReject
from got_data.families import family
from got_data.records import Box

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
    reads = ("model_image", "model_image_size", "entities")
    writes = ("groundings", "dropped")

    async def run(self, work, models) -> None:
        answers = await asyncio.gather(*(self._ground(work, models, phrase) for phrase in work.entities))
        work.groundings = [(phrase, boxes) for phrase, boxes in zip(work.entities, answers) if boxes]
        if not work.groundings:
            raise StageReject(self.name, "no_grounded_object", "; ".join(f"{p}: {r}" for p, r in work.dropped))

    async def _ground(self, work, models, phrase: str) -> list[Box]:
        return await ground_phrase(self, work, models, phrase, work.model_image, work.model_image_size)


async def ground_phrase(stage, work, models, phrase: str, image, image_size: tuple[int, int]) -> list[Box]:
    """Boxes of `phrase` on `image` (seen by the model at `image_size`) in GoT coordinates, asked in
    the stage's model family's own convention. An answer without a usable box (or a failed request)
    gives [] and a (phrase, reason) entry in `work.dropped`. Shared by every stage that grounds a phrase."""
    qwen25 = stage.family is not None and family(stage.family).absolute_boxes
    text = await models.ask(
        stage, work, values={"phrase": phrase}, images=[image],
        json_schema=QWEN25_BOX_SCHEMA if qwen25 else None, regex=None if qwen25 else QWEN2_VL_BOX_REGEX,
        skip_special_tokens=False, reject_on_failure=False,
    )
    if text is None:
        work.dropped.append((phrase, "model_failure"))
        return []
    try:
        if qwen25:
            width, height = image_size
            return parse_qwen25_vl(text, width, height, *models.pixel_bounds(stage.role))
        return parse_qwen2_vl(text)
    except GroundingParseError as exc:
        work.dropped.append((phrase, exc.reason))
        return []
