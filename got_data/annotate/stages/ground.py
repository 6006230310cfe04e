"""Grounding: every instance of each entity phrase, asked with the same image first so its prefix is
reused, one request per phrase or (`requests: per_image`) one for all of them. The answer format
(several boxes, or "not there") is each model family's own (`got_data/annotate/grounding.py`); one
object claimed by two phrases goes to the more specific one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from got_data.annotate.concurrently import gather_all
from got_data.annotate.grounding import (
    ALL_PHRASES_SECTION,
    ONE_BOX_SECTION,
    GroundingParseError,
    PhraseAnswer,
    all_phrases_constraint,
    answer_constraint,
    merge_near_duplicates,
    numbered_phrases,
    parse_grounding_answer,
    resolve_shared_objects,
    split_qwen2_vl_answer,
    split_qwen25_vl_answer,
)
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.records import Box


class GroundingOptions(StageOptions):
    """Options of every stage that grounds phrases (ground, localize)."""

    answer: Literal["instances", "one_box"] = Field(
        "instances", description="instances: every instance of the phrase, or none (not there); one_box: the single-box "
        "question and answer of models trained before multi-box grounding (the tiny specs: one short answer)")
    max_boxes: int = Field(8, ge=1, le=50, description="most boxes one phrase may get (instances of it in the picture)")
    merge_iou: float = Field(0.85, gt=0, le=1, description="boxes overlapping more than this are one object: "
                             "merged within a phrase; across phrases the more specific phrase keeps it")


def kept_boxes(boxes: list[Box], options: GroundingOptions) -> list[Box]:
    """A phrase's boxes as a grounding stage keeps them: near-duplicates merged, at most `max_boxes`."""
    return merge_near_duplicates(boxes, options.merge_iou)[: options.max_boxes]


def grounding_sections(options: GroundingOptions) -> tuple[str, ...]:
    """The prompt section a grounding stage asks one phrase's question with."""
    return (ONE_BOX_SECTION,) if options.answer == "one_box" else ("user",)


class GroundOptions(GroundingOptions):
    """The ground stage's options: the grounding answer's, and how many requests an image takes."""

    requests: Literal["per_phrase", "per_image"] = Field(
        "per_phrase", description="per_phrase: one request per entity phrase (the image prefix is reused); per_image: "
        "one request asking for every phrase's boxes, fewer requests and prefill tokens (sampling.max_tokens is then "
        "per phrase). Keep per_phrase for a model until a comparison on it says otherwise (bench/fidelity.py)")

    @model_validator(mode="after")
    def _per_image_needs_instances(self) -> GroundOptions:
        if self.requests == "per_image" and self.answer == "one_box":
            raise ValueError("requests: per_image asks for every phrase in the multi-box answer; it needs answer: instances")
        return self


class Ground(Stage):
    name = "ground"
    role = "vlm"
    reads = ("model_image", "model_image_size", "entities")
    writes = ("groundings", "dropped")

    Options = GroundOptions
    options: GroundOptions

    @classmethod
    def prompt_sections(cls, options: GroundOptions) -> tuple[str, ...]:
        return (ALL_PHRASES_SECTION,) if options.requests == "per_image" else grounding_sections(options)

    async def run(self, work, models) -> None:
        if self.options.requests == "per_image":
            answers = await self._ground_all(work, models, list(work.entities))
        else:
            answers = await gather_all(self._ground(work, models, phrase) for phrase in work.entities)
        found = [(phrase, boxes) for phrase, boxes in zip(work.entities, answers) if boxes]
        work.groundings, shared = resolve_shared_objects(found, self.options.merge_iou)
        work.dropped.extend(shared)
        if not work.groundings:
            raise StageReject(self.name, "no_grounded_object", "; ".join(f"{p}: {r}" for p, r in work.dropped))

    async def _ground(self, work, models, phrase: str) -> list[Box]:
        return await ground_phrase(self, work, models, phrase, work.model_image, work.model_image_size)

    async def _ground_all(self, work, models, phrases: list[str]) -> list[list[Box]]:
        """Every phrase's boxes from one request; a phrase without a usable box gets [] and a
        (phrase, reason) entry in `work.dropped`, as when asked alone."""
        if not phrases:
            return []
        options = self.options
        constraint = all_phrases_constraint(self.family, phrases, options.max_boxes)
        text = await models.ask(
            self, work, values={"phrases": numbered_phrases(phrases)}, images=[work.model_image],
            section=ALL_PHRASES_SECTION, json_schema=constraint.json_schema, regex=constraint.regex,
            skip_special_tokens=False, reject_on_failure=False,
            max_tokens=self.spec.sampling.max_tokens * len(phrases),
        )
        if text is None:
            work.dropped.extend((phrase, "model_failure") for phrase in phrases)
            return [[] for _ in phrases]
        answers: list[PhraseAnswer]
        if constraint.json_schema is not None:
            width, height = work.model_image_size
            answers = split_qwen25_vl_answer(text, phrases, width, height, *models.pixel_bounds(self.role))
        else:
            answers = split_qwen2_vl_answer(text, phrases)
        found: list[list[Box]] = []
        for phrase, answer in zip(phrases, answers):
            if isinstance(answer, GroundingParseError):
                work.dropped.append((phrase, answer.reason))
                found.append([])
            else:
                found.append(kept_boxes(answer, options))
        return found


async def ground_phrase(stage: Stage, work, models, phrase: str, image, image_size: tuple[int, int],
                        tag: str | None = None) -> list[Box]:
    """Every box of `phrase` on `image` (seen by the model at `image_size`) in GoT coordinates, asked in
    the stage's model family's own multi-box convention, near-duplicates merged and at most the
    stage's `max_boxes`. An answer without a usable box ("not there", a bad answer, a failed request)
    gives [] and a (phrase, reason) entry in `work.dropped`. Shared by every stage that grounds a
    phrase; the stage's options are `GroundingOptions`; `tag` says which image is meant when a stage
    asks about several."""
    options = stage.options
    assert isinstance(options, GroundingOptions)
    one_box = options.answer == "one_box"
    constraint = answer_constraint(stage.family, phrase, options.max_boxes, one_box)
    text = await models.ask(
        stage, work, values={"phrase": phrase}, images=[image], section=ONE_BOX_SECTION if one_box else "user",
        json_schema=constraint.json_schema, regex=constraint.regex,
        skip_special_tokens=False, reject_on_failure=False, tag=tag,
    )
    if text is None:
        work.dropped.append((phrase, "model_failure"))
        return []
    try:
        boxes = parse_grounding_answer(text, stage.family, *image_size, *models.pixel_bounds(stage.role))
    except GroundingParseError as exc:
        work.dropped.append((phrase, exc.reason))
        return []
    return kept_boxes(boxes, options)
