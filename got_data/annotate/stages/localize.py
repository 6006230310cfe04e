"""Localize: the edit region of each edit as boxes: the edited phrases grounded on the image before
the edit (for an add, on the image after it, where the new object is). Global edits (style,
weather, lighting, background), and edits whose parsed object is "the whole image", take the whole
image, (0,0),(999,999), without asking a model."""

from __future__ import annotations

from got_data.annotate.concurrently import gather_all
from got_data.annotate.stage import Stage, StageReject
from got_data.annotate.stages.ground import GroundingOptions, ground_phrase, grounding_sections
from got_data.records import WHOLE_IMAGE
from got_data.records.edits import WHOLE_IMAGE_PHRASE


class Localize(Stage):
    name = "localize"
    role = "vlm"
    reads = ("steps.objects", "steps.edit_type", "steps.before", "steps.after")
    writes = ("steps.groundings", "dropped")

    Options = GroundingOptions
    options: GroundingOptions

    @classmethod
    def prompt_sections(cls, options: GroundingOptions) -> tuple[str, ...]:
        return grounding_sections(options)

    async def run(self, work, models) -> None:
        await gather_all(self._localize(work, models, n, step) for n, step in enumerate(work.steps, start=1))

    async def _localize(self, work, models, n: int, step) -> None:
        if step.is_global or step.objects == [WHOLE_IMAGE_PHRASE]:
            step.groundings = [(step.objects[0], [WHOLE_IMAGE])]
            return
        image = step.after if step.edit_type == "add" else step.before
        phrases = [p for p in step.objects if p != WHOLE_IMAGE_PHRASE]  # a whole-image box next to objects says nothing
        results = await gather_all(
            ground_phrase(self, work, models, phrase, image.model_image, image.model_size) for phrase in phrases)
        step.groundings = [(p, boxes) for p, boxes in zip(phrases, results) if boxes]
        if not step.groundings:
            why = "; ".join(f"{p}: {r}" for p, r in work.dropped if p in phrases)
            raise StageReject(self.name, "no_region", f"edit {n}: no box for {phrases} ({why})")
