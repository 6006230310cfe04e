"""Verify: every grounded box of a T2I input checked by the VLM on its crop
(`got_data/annotate/verification.py`); boxes it does not vouch for leave the record, and an input
left with no box is rejected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from got_data.annotate.stage import Stage, StageOptions, StageReject, load_prompt_for
from got_data.annotate.verification import NO_VERIFIED_BOX, verify_groundings
from got_data.spec import PromptTemplate, StageSpec


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
    reground: bool = Field(False, description="true: a box the yes/no question kept is grounded again on a crop of "
                           "its surroundings, in the grounding prompt's words and answer (prompts/ground*.txt; "
                           "verify_regions: localize*.txt), and kept only when a box found there agrees with it; one "
                           "more request per kept box")
    reground_margin: float = Field(0.5, ge=0, le=2, description="the re-grounding crop is the box widened by this "
                                   "share of its sides on every side (inside the image)")
    reground_iou: float = Field(0.5, gt=0, le=1, description="a box agrees when one box the re-grounding found "
                                "overlaps it at least this much (IoU)")


class BoxVerifier(Stage):
    """What the verify stages share: with `reground` on, the grounding stage's prompt
    (`reground_prompt_name`, its family variant first) to ask the re-grounding question in its words."""

    reground_prompt_name: ClassVar[str]
    Options = VerifyOptions
    options: VerifyOptions

    def __init__(self, spec: StageSpec, family: str | None = None, prompt_dirs: Sequence[Path] = ()):
        super().__init__(spec, family, prompt_dirs)
        self.reground_prompt: PromptTemplate | None = (
            load_prompt_for(self.reground_prompt_name, family, prompt_dirs) if self.options.reground else None)


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

