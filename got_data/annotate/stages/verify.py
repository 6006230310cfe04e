"""Verify: every grounded box of a T2I input checked by the VLM on its crop
(`got_data/annotate/verification.py`); boxes it does not vouch for leave the record, and an input
left with no box is rejected."""

from __future__ import annotations

from got_data.annotate.stage import StageReject
from got_data.annotate.verification import NO_VERIFIED_BOX, BoxVerifier, verify_groundings


class Verify(BoxVerifier):
    name = "verify"
    role = "vlm"
    reads = ("model_image", "model_image_size", "groundings")
    writes = ("groundings", "box_scores", "dropped", "dropped_boxes")
    reground_prompt_name = "ground.txt"

    async def run(self, work, models) -> None:
        if not self.options.enabled:
            return
        work.groundings, work.box_scores = await verify_groundings(self, work, models, work.groundings,
                                                                   work.model_image, work.model_image_size)
        if not work.groundings:
            raise StageReject(self.name, NO_VERIFIED_BOX,
                              "; ".join(f"{p}: {r}" for p, r in work.dropped_boxes) or "no box to verify")

