"""Box verification: a box is kept only when the VLM, shown the box's crop, says the phrase is there.

Models lean to "yes" (ROVI needed a 0.2 margin), so the answer's text is not trusted: the score is
p(yes) - p(no) of the answer's first token, read from the engine's log-probabilities, and a box
passes when it exceeds the stage's threshold. The crop is widened by a margin so the model sees the
object's edges and a little context.

Optionally (`reground`), a box the yes/no question kept is grounded again: the phrase asked with the
grounding stage's own question and answer grammar on a wider crop of the box's surroundings, the
answer mapped back to the image, and the box kept only when one of the returned boxes agrees with it
(IoU at least `reground_iou`): a second, independent look (ROVI, GranD) that a lean to "yes" cannot pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from got_data.annotate.concurrently import gather_all
from got_data.annotate.crops import crop_rect, crop_rects
from got_data.annotate.grounding import GroundingParseError, answer_constraint, parse_grounding_answer
from got_data.annotate.stage import Stage, StageOptions, load_prompt_for
from got_data.records.boxes import REL_MAX, Box, crop_box_to_image, crop_pixels
from got_data.spec import PromptTemplate, StageSpec

YES_NO_REGEX = r"[Yy]es|[Nn]o"
UNVERIFIED = "unverified"  # a box whose score is at or below the threshold
NO_VERIFIED_BOX = "no_verified_box"  # a phrase (dropped) or an input (rejected) left without a box
REGROUND_DISAGREES = "reground_disagrees"  # grounded again on its surroundings, no box matched it
REGROUND_MAX_BOXES = 8  # instances the re-grounding answer may list (the grounding stages' default)
_CROP_TAG = re.compile(r"crop (\d+),(\d+),(\d+),(\d+) of (\d+)x(\d+)")


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
    """What the verify stages share: with the option `reground` on, the grounding stage's prompt
    (`reground_prompt_name`, its family variant first) to ask the re-grounding question in its words."""

    reground_prompt_name: ClassVar[str]
    Options = VerifyOptions
    options: VerifyOptions

    def __init__(self, spec: StageSpec, family: str | None = None, prompt_dirs: Sequence[Path] = ()):
        super().__init__(spec, family, prompt_dirs)
        self.reground_prompt: PromptTemplate | None = (
            load_prompt_for(self.reground_prompt_name, family, prompt_dirs)
            if self.options.reground else None)


def yes_no_margin(first_token: dict[str, float]) -> float:
    """p(yes) - p(no) from one answer token's log-probabilities by token text; tokens spelling the
    start of "yes" or "no" ("Yes", " yes", "y") count for it. In [-1, 1]."""
    p_yes = p_no = 0.0
    for text, logprob in first_token.items():
        word = text.strip().lower()
        if word and "yes".startswith(word):
            p_yes += math.exp(logprob)
        elif word and "no".startswith(word):
            p_no += math.exp(logprob)
    return max(-1.0, min(1.0, p_yes - p_no))


def with_margin(box: Box, margin: float) -> Box:
    """The box widened by `margin` of its width and height on every side, inside the image."""
    dx, dy = round((box.x2 - box.x1) * margin), round((box.y2 - box.y1) * margin)
    return Box(x1=max(0, box.x1 - dx), y1=max(0, box.y1 - dy), x2=min(REL_MAX, box.x2 + dx), y2=min(REL_MAX, box.y2 + dy))


async def box_score(stage: Any, work: Any, models: Any, phrase: str, crop: Any, box: Box, top: int) -> float | None:
    """The VLM's p(yes) - p(no) that `crop` (of `box`, widened: `verify_crops`) shows `phrase`; None
    when the request failed."""
    logprobs = await models.ask_logprobs(stage, work, values={"phrase": phrase}, images=[crop], regex=YES_NO_REGEX,
                                         top=top, tag=box.render())
    return yes_no_margin(logprobs[0]) if logprobs else None


def crop_tag(rect: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    """The tag of a re-grounding request: which pixels of which model image size the crop is, so the
    world oracle can answer in the crop's coordinates (`parse_crop_tag`)."""
    return f"crop {rect[0]},{rect[1]},{rect[2]},{rect[3]} of {size[0]}x{size[1]}"


def parse_crop_tag(tag: str) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """(rect, size) of a `crop_tag`; ValueError when `tag` is not one."""
    match = _CROP_TAG.fullmatch(tag)
    if not match:
        raise ValueError(f"not a crop tag: {tag!r} (expected 'crop x1,y1,x2,y2 of WxH')")
    x1, y1, x2, y2, width, height = map(int, match.groups())
    return (x1, y1, x2, y2), (width, height)


def regrounded_boxes(text: str, family_name: str | None, rect: tuple[int, int, int, int], size: tuple[int, int],
                     pixel_bounds: tuple[int | None, int | None]) -> list[Box]:
    """The boxes of a grounding answer about the crop `rect` of a `size` model image, on the whole
    image: parsed in the family's convention on the crop (Qwen2-VL relative, Qwen2.5-VL pixels on the
    resized crop), then placed where the crop lies. Raises GroundingParseError (`not_there` too)."""
    on_crop = parse_grounding_answer(text, family_name, rect[2] - rect[0], rect[3] - rect[1], *pixel_bounds)
    boxes = []
    for box in on_crop:
        try:
            boxes.append(crop_box_to_image(box, rect, *size))
        except ValueError:
            continue  # a sliver of the crop's edge: nothing on the image's scale
    return boxes


async def reground_agreement(stage: Any, work: Any, models: Any, phrase: str, image: Any, size: tuple[int, int],
                             box: Box) -> float | None:
    """The best IoU between `box` and the boxes the VLM finds for `phrase` on the box's surroundings
    (the box widened by the stage's `reground_margin`), asked with the grounding stage's question
    (`stage.reground_prompt`); 0 when it finds none, None when the request failed."""
    rect = crop_pixels(with_margin(box, stage.options.reground_margin), *size)
    constraint = answer_constraint(stage.family, phrase, REGROUND_MAX_BOXES)
    text = await models.ask(stage, work, values={"phrase": phrase}, images=[crop_rect(image, rect)],
                            json_schema=constraint.json_schema, regex=constraint.regex, skip_special_tokens=False,
                            reject_on_failure=False, tag=crop_tag(rect, size), prompt=stage.reground_prompt)
    if text is None:
        return None
    try:
        found = regrounded_boxes(text, stage.family, rect, size, models.pixel_bounds(stage.role))
    except GroundingParseError:
        return 0.0  # "not there", or no box it could read: no agreement
    return max((box.iou(other) for other in found), default=0.0)


def verify_crops(image: Any, size: tuple[int, int], boxes: list[Box], margin: float) -> list[Any]:
    """The crop shown for each box (the box widened by `margin`), all cut by one task."""
    return crop_rects(image, [crop_pixels(with_margin(box, margin), *size) for box in boxes])


async def box_verdict(stage: Any, work: Any, models: Any, phrase: str, image: Any, size: tuple[int, int],
                      box: Box, crop: Any) -> float | str:
    """A kept box's score, or why the box is dropped: the yes/no question (on `crop`) first, then
    (`reground`) the re-grounding, asked only about a box the question kept."""
    options = stage.options
    score = await box_score(stage, work, models, phrase, crop, box, options.top_logprobs)
    if score is None:
        return "model_failure"
    if score <= options.threshold:
        return UNVERIFIED
    if options.reground:
        agreement = await reground_agreement(stage, work, models, phrase, image, size, box)
        if agreement is None:
            return "model_failure"
        if agreement < options.reground_iou:
            return REGROUND_DISAGREES
    return round(score, 4)


async def verify_groundings(stage: Any, work: Any, models: Any, groundings: list[tuple[str, list[Box]]], image: Any,
                            size: tuple[int, int]) -> tuple[list[tuple[str, list[Box]]], list[list[float]]]:
    """The groundings with only the boxes that pass, and each kept box's score (aligned). A dropped
    box adds (phrase, reason) to `work.dropped_boxes` (`unverified`, `reground_disagrees`,
    `model_failure`); a phrase left with none adds (phrase, `no_verified_box`) to `work.dropped`. The
    stage's options give `threshold`, `margin`, `top_logprobs` and the `reground` ones."""
    asked = [(phrase, box) for phrase, boxes in groundings for box in boxes]
    crops = verify_crops(image, size, [box for _, box in asked], stage.options.margin)
    verdicts = iter(await gather_all(box_verdict(stage, work, models, phrase, image, size, box, crop)
                                     for (phrase, box), crop in zip(asked, crops)))
    kept: list[tuple[str, list[Box]]] = []
    kept_scores: list[list[float]] = []
    for phrase, boxes in groundings:
        passing = []
        for box, verdict in zip(boxes, verdicts):
            if isinstance(verdict, str):
                work.dropped_boxes.append((phrase, verdict))
            else:
                passing.append((box, verdict))
        if passing:
            kept.append((phrase, [box for box, _ in passing]))
            kept_scores.append([score for _, score in passing])
        else:
            work.dropped.append((phrase, NO_VERIFIED_BOX))
    return kept, kept_scores
