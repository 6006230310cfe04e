"""Box verification: a box is kept only when the VLM, shown the box's crop, says the phrase is there.

Models lean to "yes" (ROVI needed a 0.2 margin), so the answer's text is not trusted: the score is
p(yes) - p(no) of the answer's first token, read from the engine's log-probabilities, and a box
passes when it exceeds the stage's threshold. The crop is widened by a margin so the model sees the
object's edges and a little context.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from got_data.annotate.crops import crop_region
from got_data.records.boxes import REL_MAX, Box

YES_NO_REGEX = r"[Yy]es|[Nn]o"
UNVERIFIED = "unverified"  # a box whose score is at or below the threshold
NO_VERIFIED_BOX = "no_verified_box"  # a phrase (dropped) or an input (rejected) left without a box


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


async def box_score(stage: Any, work: Any, models: Any, phrase: str, image: Any, size: tuple[int, int], box: Box,
                    margin: float, top: int) -> float | None:
    """The VLM's p(yes) - p(no) that the crop of `box` shows `phrase`; None when the request failed."""
    crop = crop_region(image, size, with_margin(box, margin))
    logprobs = await models.ask_logprobs(stage, work, values={"phrase": phrase}, images=[crop], regex=YES_NO_REGEX,
                                         top=top, tag=box.render())
    return yes_no_margin(logprobs[0]) if logprobs else None


async def verify_groundings(stage: Any, work: Any, models: Any, groundings: list[tuple[str, list[Box]]], image: Any,
                            size: tuple[int, int]) -> tuple[list[tuple[str, list[Box]]], list[list[float]]]:
    """The groundings with only the boxes that pass, and each kept box's score (aligned). A dropped
    box adds (phrase, reason) to `work.dropped_boxes` (`unverified`, `model_failure`); a phrase left
    with none adds (phrase, `no_verified_box`) to `work.dropped`. The stage's options give
    `threshold`, `margin` and `top_logprobs`."""
    options = stage.options
    scores = await asyncio.gather(*(
        asyncio.gather(*(box_score(stage, work, models, phrase, image, size, box, options.margin, options.top_logprobs)
                         for box in boxes))
        for phrase, boxes in groundings))
    kept: list[tuple[str, list[Box]]] = []
    kept_scores: list[list[float]] = []
    for (phrase, boxes), phrase_scores in zip(groundings, scores):
        passing = []
        for box, score in zip(boxes, phrase_scores):
            if score is None:
                work.dropped_boxes.append((phrase, "model_failure"))
            elif score > options.threshold:
                passing.append((box, round(score, 4)))
            else:
                work.dropped_boxes.append((phrase, UNVERIFIED))
        if passing:
            kept.append((phrase, [box for box, _ in passing]))
            kept_scores.append([score for _, score in passing])
        else:
            work.dropped.append((phrase, NO_VERIFIED_BOX))
    return kept, kept_scores
