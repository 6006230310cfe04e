"""Grounding: every instance of each entity phrase, asked with the same image first so its prefix is
reused. The answer format (several boxes, or "not there") is each model family's own
(`got_data/annotate/grounding.py`); one object claimed by two phrases goes to the more specific one."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from got_data.annotate.grounding import (
    ONE_BOX_SECTION,
    GroundingParseError,
    answer_constraint,
    merge_near_duplicates,
    parse_qwen2_vl,
    parse_qwen25_vl,
    resolve_shared_objects,
)
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.records import Box


class GroundingOptions(StageOptions):
    """Options of every stage that grounds phrases (ground, localize)."""

    answer: Literal["instances", "one_box"] = Field(
        "instances", description="instances: every instance of the phrase, or none (not there); one_box: the single-box "
        "question and answer of models trained before multi-box grounding (the committed world VLM)")
    max_boxes: int = Field(8, ge=1, le=50, description="most boxes one phrase may get (instances of it in the picture)")
    merge_iou: float = Field(0.85, gt=0, le=1, description="boxes overlapping more than this are one object: "
                             "merged within a phrase; across phrases the more specific phrase keeps it")


class Ground(Stage):
    name = "ground"
    role = "vlm"
    reads = ("model_image", "model_image_size", "entities")
    writes = ("groundings", "dropped")

    Options = GroundingOptions
    options: GroundingOptions

    async def run(self, work, models) -> None:
        answers = await asyncio.gather(*(self._ground(work, models, phrase) for phrase in work.entities))
        found = [(phrase, boxes) for phrase, boxes in zip(work.entities, answers) if boxes]
        work.groundings, shared = resolve_shared_objects(found, self.options.merge_iou)
        work.dropped.extend(shared)
        if not work.groundings:
            raise StageReject(self.name, "no_grounded_object", "; ".join(f"{p}: {r}" for p, r in work.dropped))

    async def _ground(self, work, models, phrase: str) -> list[Box]:
        return await ground_phrase(self, work, models, phrase, work.model_image, work.model_image_size)


async def ground_phrase(stage: Stage, work, models, phrase: str, image, image_size: tuple[int, int]) -> list[Box]:
    """Every box of `phrase` on `image` (seen by the model at `image_size`) in GoT coordinates, asked in
    the stage's model family's own multi-box convention, near-duplicates merged and at most the
    stage's `max_boxes`. An answer without a usable box ("not there", a bad answer, a failed request)
    gives [] and a (phrase, reason) entry in `work.dropped`. Shared by every stage that grounds a
    phrase; the stage's options are `GroundingOptions`."""
    options = stage.options
    assert isinstance(options, GroundingOptions)
    one_box = options.answer == "one_box"
    constraint = answer_constraint(stage.family, phrase, options.max_boxes, one_box)
    text = await models.ask(
        stage, work, values={"phrase": phrase}, images=[image], section=ONE_BOX_SECTION if one_box else "user",
        json_schema=constraint.json_schema, regex=constraint.regex,
        skip_special_tokens=False, reject_on_failure=False,
    )
    if text is None:
        work.dropped.append((phrase, "model_failure"))
        return []
    try:
        if constraint.json_schema is not None:
            width, height = image_size
            boxes = parse_qwen25_vl(text, width, height, *models.pixel_bounds(stage.role))
        else:
            boxes = parse_qwen2_vl(text)
    except GroundingParseError as exc:
        work.dropped.append((phrase, exc.reason))
        return []
    return merge_near_duplicates(boxes, options.merge_iou)[: options.max_boxes]
