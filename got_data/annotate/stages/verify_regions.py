"""Verify regions: the edit pipelines' verify stage (T2I's `verify` on each edit's region boxes)."""

from __future__ import annotations

from got_data.annotate.stage import StageReject
from got_data.annotate.verification import NO_VERIFIED_BOX, BoxVerifier, verify_groundings
from got_data.records import WHOLE_IMAGE


class VerifyRegions(BoxVerifier):
    """The edit pipelines' verify: each edit's region boxes checked on the image they were found on
    (before the edit; for an add, after it). Whole-image regions (global edits) are not asked about."""

    name = "verify_regions"
    role = "vlm"
    reads = ("steps.groundings", "steps.edit_type", "steps.objects", "steps.before", "steps.after")
    writes = ("steps.groundings", "steps.box_scores", "dropped", "dropped_boxes")
    reground_prompt_name = "localize.txt"

    async def run(self, work, models) -> None:
        if not self.options.enabled:
            return
        for n, step in enumerate(work.steps, start=1):
            if step.is_global or all(boxes == [WHOLE_IMAGE] for _, boxes in step.groundings):
                continue
            image = step.after if step.edit_type == "add" else step.before
            step.groundings, step.box_scores = await verify_groundings(self, work, models, step.groundings,
                                                                       image.model_image, image.model_size)
            if not step.groundings:
                raise StageReject(self.name, NO_VERIFIED_BOX, f"edit {n}: "
                                  + "; ".join(f"{p}: {r}" for p, r in work.dropped_boxes))
