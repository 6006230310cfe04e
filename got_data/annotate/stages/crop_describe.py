"""Crop-describe: the edit region cut from the image before and after each edit, each crop named in
a few words (what the object was, what it became). Optional detail: a failed answer leaves the
record's object descriptions empty instead of rejecting the input."""

from __future__ import annotations

import asyncio

from got_data.annotate.answers import DescriptionAnswer, bounded_schema
from got_data.annotate.crops import crop_region
from got_data.annotate.stage import Stage
from got_data.annotate.text import clean_model_text, first_words, parse_json_answer
from got_data.records.boxes import union_box


class CropDescribe(Stage):
    name = "crop_describe"
    role = "vlm"
    reads = ("steps.groundings", "steps.before", "steps.after")
    writes = ("steps.object_description", "steps.new_object_description", "dropped")

    async def run(self, work, models) -> None:
        await asyncio.gather(*(self._step(work, models, step) for step in work.steps))

    async def _step(self, work, models, step) -> None:
        region = union_box(step.regions)
        step.object_description, step.new_object_description = await asyncio.gather(
            self._describe(work, models, step, step.before, region, "before"),
            self._describe(work, models, step, step.after, region, "after"),
        )

    async def _describe(self, work, models, step, image, region, when: str) -> str | None:
        crop = crop_region(image.model_image, image.model_size, region)
        text = await models.ask(
            self, work, values={"object": step.target_object, "instruction": step.instruction}, images=[crop],
            json_schema=bounded_schema(DescriptionAnswer, {"description": self.option("max_chars", 80)}),
            reject_on_failure=False, tag=when,
        )
        if text is None:
            work.dropped.append((f"{when} crop", "model_failure"))
            return None
        try:
            answer = parse_json_answer(DescriptionAnswer, text)
        except ValueError:
            work.dropped.append((f"{when} crop", "unparsable_answer"))
            return None
        return first_words(clean_model_text(answer.description), int(self.option("max_words", 8))) or None
