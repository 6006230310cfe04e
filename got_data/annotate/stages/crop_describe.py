"""Crop-describe: the edit region cut from the image before and after each edit, each crop named in
at most `max_words` words (what the object was, what it became; the prompt sees the bound as `$words`:
the real specs' `crop_describe_detailed.txt` asks for a detailed phrase, the world specs keep the short
`crop_describe.txt`). Optional detail: a failed answer leaves the record's object descriptions empty
instead of rejecting the input."""

from __future__ import annotations

import asyncio

from pydantic import Field

from got_data.annotate.answer_schemas import DescriptionAnswer, bounded_schema
from got_data.annotate.ask_json import ask_json
from got_data.annotate.concurrently import gather_all
from got_data.annotate.crops import crop_region
from got_data.annotate.model_text import clean_model_text, first_words
from got_data.annotate.stage import Stage, StageOptions
from got_data.records.boxes import union_box


class CropDescribe(Stage):
    name = "crop_describe"
    role = "vlm"
    reads = ("steps.instruction", "steps.objects", "steps.groundings", "steps.before", "steps.after")
    writes = ("steps.object_description", "steps.new_object_description", "dropped")

    class Options(StageOptions):
        max_chars: int = Field(80, gt=0, description="JSON maxLength of each crop description")
        max_words: int = Field(8, gt=0, description="crop descriptions are cut to this many words")

    options: Options

    async def run(self, work, models) -> None:
        await gather_all(self._step(work, models, step) for step in work.steps)

    async def _step(self, work, models, step) -> None:
        region = union_box(step.regions)
        step.object_description, step.new_object_description = await asyncio.gather(
            self._describe(work, models, step, step.before, region, "before"),
            self._describe(work, models, step, step.after, region, "after"),
        )

    async def _describe(self, work, models, step, image, region, when: str) -> str | None:
        crop = crop_region(image.model_image, image.model_size, region)
        answer = await ask_json(
            self, work, models, DescriptionAnswer,
            values={"object": step.target_object, "instruction": step.instruction,
                    "words": str(self.options.max_words)}, images=[crop],
            json_schema=bounded_schema(DescriptionAnswer, {"description": self.options.max_chars}),
            tag=when, on_bad="drop", dropped_as=f"{when} crop",
        )
        if answer is None:
            return None
        return first_words(clean_model_text(answer.description), self.options.max_words) or None
