"""Verify: every grounded box of a T2I input checked by the VLM on its crop
(`got_data/annotate/verification.py`); boxes it does not vouch for leave the record, and an input
left with no box is rejected."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.annotate.verification import NO_VERIFIED_BOX, verify_groundings


class VerifyOptions(StageOptions):
    """Options of the verify stages (t2i: verify; edits: verify_regions)."""

    enabled: bool = Field(True, description="false: boxes pass unchecked and no request is made (the switch a spec "
                                            "flips, e.g. for models that never learned the question)")
    threshold: float = Field(0.2, ge=-1, lt=1, description="a box is kept when p(yes) - p(no) exceeds this "
                                                          "(models lean to yes: ROVI needed 0.2)")
    margin: float = Field(0.1, ge=0, le=1, description="the crop shown is the box widened by this share of its "
                                                       "sides on every side")
    top_logprobs: int = Field(10, ge=2, le=20, description="log-probabilities read per answer token "
                                                           "(yes and no must be among them to count)")


class Verify(Stage):
    name = "verify"
    role = "vlm"
    reads = ("model_image", "model_image_size", "groundings")
    writes = ("groundings", "box_scores", "dropped", "dropped_boxes")

    Options = VerifyOptions
    options: VerifyOptions

    async def run(self, work, models) -> None:
        if not self.options.enabled:
            return
        work.groundings, work.box_scores = await verify_groundings(self, work, models, work.groundings,
                                                                   work.model_image, work.model_image_size)
        if not work.groundings:
            raise StageReject(self.name, NO_VERIFIED_BOX,
                              "; ".join(f"{p}: {r}" for p, r in work.dropped_boxes) or "no box to verify")

