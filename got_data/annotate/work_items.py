"""Units of work that flow through the stages: one input and what stages add to it.

A work kind is built by the runner from the input item and its decoded images (`from_decoded`), and
hands the runner back a validated `record` and its shard members (`shard_images`). It also says which
fields the input gives (`provided`) and which properties derive from which fields (`derived`): the
stages' `reads`/`writes` are checked against them (`got_data/annotate/stage_io.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from got_data.annotate.decode import DecodedImage
from got_data.annotate.stage import Usage
from got_data.ingest.edit_items import EditItem, clean_instruction
from got_data.ingest.images import PreparedImage
from got_data.ingest.items import InputItem
from got_data.records import Box, EditOp, EditRecord, MultiTurnRecord, T2IRecord, make_key
from got_data.records.edits import GLOBAL_EDIT_TYPES


@dataclass(kw_only=True)
class Work(ABC):
    """What every work kind carries: provenance, token usage, dropped phrases, the finished record."""

    item: Any
    provenance: dict[str, Any]  # the run's static provenance; per-item tokens and times are added here
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    usage: Usage = field(default_factory=Usage)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (what, why) left out of the record
    dropped_boxes: list[tuple[str, str]] = field(default_factory=list)  # (phrase, why) per box the verify stage dropped
    record: Any = None

    # Any stage may use these (the gateway reads `item` and counts `usage`; `record_fields` builds the record).
    common: ClassVar[frozenset[str]] = frozenset(
        {"item", "usage", "provenance", "started_at", "key", "kind", "record_fields", "finished_provenance",
         "shard_images"})
    provided: ClassVar[frozenset[str]] = frozenset()  # fields the input gives before any stage runs
    derived: ClassVar[dict[str, tuple[str, ...]]] = {}  # property -> the fields it reads
    nested: ClassVar[dict[str, type]] = {}  # list field -> its item type; `steps.X` names X of every item

    @classmethod
    @abstractmethod
    def from_decoded(cls, item: Any, images: dict[str, DecodedImage], provenance: dict[str, Any]) -> Work:
        """The work of one input whose images are decoded (`images` by role)."""

    @property
    @abstractmethod
    def key(self) -> str:
        """The record's key (kind, dataset, input and image hashes)."""

    @abstractmethod
    def shard_images(self) -> dict[str, bytes]:
        """Shard members of the finished record: member name -> stored bytes."""

    def finished_provenance(self) -> dict[str, Any]:
        provenance = dict(self.provenance)
        provenance["tokens"] = dict(self.usage.by_stage)  # StageUsage models: parse_record serializes them
        provenance["started_at"] = self.started_at
        provenance["finished_at"] = datetime.now(timezone.utc)
        return provenance


@dataclass(kw_only=True)
class T2IWork(Work):
    item: InputItem
    image: PreparedImage
    model_image: Any  # ray.ObjectRef to the RGB PIL image the models see (downscaled to max_pixels)
    model_image_size: tuple[int, int]
    prompt: str = ""
    description: str = ""
    entities: list[str] = field(default_factory=list)
    groundings: list[tuple[str, list]] = field(default_factory=list)
    box_scores: list[list[float]] | None = None  # verification score of each grounding's boxes (verify stage)
    record: T2IRecord | None = None

    provided: ClassVar[frozenset[str]] = frozenset({"image", "model_image", "model_image_size", "caption"})

    @classmethod
    def from_decoded(cls, item: InputItem, images: dict[str, DecodedImage], provenance: dict[str, Any]) -> "T2IWork":
        decoded = images["image"]
        return cls(item=item, image=decoded.prepared, model_image=decoded.model_image,
                   model_image_size=decoded.model_size, provenance=provenance)

    def shard_images(self) -> dict[str, bytes]:
        """Shard members of the finished record: member name -> stored bytes."""
        return {self.image.member_ext: self.image.data}

    @property
    def caption(self) -> str | None:
        return self.item.caption

    @property
    def key(self) -> str:
        return make_key("t2i", self.item.dataset, self.item.input_ref, self.image.original_sha256)

    def record_fields(self, got: str, objects: list) -> dict[str, Any]:
        return {
            "kind": "t2i",
            "key": self.key,
            "source": self.item.source_info(),
            "images": [self.image.image_info("image", self.image.member_ext)],
            "got": got,
            "provenance": self.finished_provenance(),
            "prompt": self.prompt,
            "description": self.description,
            "objects": objects,
        }


@dataclass
class EditStep:
    """One edit (a single-turn pair, or one turn of a sequence) and what the stages learn about it."""

    instruction: str  # cleaned (control tokens removed); the verbatim text is in source.original_caption
    before: DecodedImage
    after: DecodedImage
    given_edit_type: str | None = None  # from the input, when it says
    edit_type: str | None = None
    objects: list[str] = field(default_factory=list)  # phrases of the instruction naming what is edited
    new_object: str | None = None  # replace edits: what takes the object's place
    groundings: list[tuple[str, list[Box]]] = field(default_factory=list)  # (phrase, boxes), region order
    box_scores: list[list[float]] | None = None  # verification score of each grounding's boxes (verify_regions)
    object_description: str | None = None  # crop of the region before the edit
    new_object_description: str | None = None  # crop of the region after the edit
    reinstructions: list[str] = field(default_factory=list)
    object_text: str = ""  # assembly prose: which object, where
    change: str = ""  # assembly prose: how it changes

    @property
    def is_global(self) -> bool:
        return self.edit_type in GLOBAL_EDIT_TYPES

    @property
    def regions(self) -> list[Box]:
        return [box for _, boxes in self.groundings for box in boxes]

    @property
    def target_object(self) -> str:
        return " and ".join(phrase for phrase, _ in self.groundings) or " and ".join(self.objects)

    def edit_op(self) -> EditOp:
        return EditOp(
            edit_type=self.edit_type, target_object=self.target_object,
            new_object=self.new_object if self.edit_type == "replace" else None, regions=self.regions,
            region_scores=None if self.box_scores is None else [score for scores in self.box_scores for score in scores],
            change=self.change, object_description=self.object_description,
            new_object_description=self.new_object_description,
        )


@dataclass(kw_only=True)
class EditWorkBase(Work):
    """An edit input on its way through the stages: its images by role and one EditStep per turn.

    The stages only use `steps`, `first`, `last` and the two descriptions, so the same stage classes
    serve single-turn and multi-turn pipelines; the subclasses differ in the record they build. A
    multi-turn input given as one combined instruction starts with no steps: `split_instruction`
    makes them (and names the final image `turnN`, `step_images` saying which steps have an image).
    """

    item: EditItem
    images: dict[str, DecodedImage]  # by record role, in order
    steps: list[EditStep]
    source_description: str = ""
    final_description: str = ""  # single-turn: the target's description
    # the objects each description names ("source", "final"), then where they are (place_objects)
    object_phrases: dict[str, list[str]] = field(default_factory=dict)
    placed: dict[str, list[tuple[str, list[Box]]]] = field(default_factory=dict)
    step_images: list[bool] | None = None  # combined inputs, once split: per step, whether its image exists

    kind: ClassVar[str]
    provided: ClassVar[frozenset[str]] = frozenset(
        {"images", "steps", "first", "last", "combined_instruction", "steps.instruction", "steps.given_edit_type",
         "steps.before", "steps.after"})
    derived: ClassVar[dict[str, tuple[str, ...]]] = {
        "steps.is_global": ("steps.edit_type",),
        "steps.regions": ("steps.groundings",),
        "steps.target_object": ("steps.groundings", "steps.objects"),
    }
    nested: ClassVar[dict[str, type]] = {"steps": EditStep}

    @classmethod
    def from_decoded(cls, item: EditItem, images: dict[str, DecodedImage], provenance: dict[str, Any]) -> "EditWorkBase":
        ordered = [images[role] for role in item.roles()]
        steps = [
            EditStep(instruction=clean_instruction(turn.instruction), before=before, after=after,
                     given_edit_type=turn.edit_type)
            for turn, before, after in zip(item.turns, ordered, ordered[1:])
        ]
        return cls(item=item, images={role: images[role] for role in item.roles()}, steps=steps, provenance=provenance)

    @property
    def first(self) -> DecodedImage:
        """The source image."""
        return next(iter(self.images.values()))

    @property
    def last(self) -> DecodedImage:
        """The image after the last edit (the target, the last turn's, or a combined input's final)."""
        return list(self.images.values())[-1]

    @property
    def combined_instruction(self) -> str | None:
        """The cleaned combined instruction of an input that gives its steps as one; None otherwise."""
        return None if self.item.combined is None else clean_instruction(self.item.combined.instruction)

    @property
    def key(self) -> str:
        shas = [im.prepared.original_sha256 for im in self.images.values()]
        return make_key(self.kind, self.item.dataset, self.item.input_ref, *shas)

    @staticmethod
    def member(role: str, image: DecodedImage) -> str:
        """The image's shard member: `source.jpg`, `target.png`, `turn1.jpg`..."""
        return f"{role}.{image.prepared.member_ext}"

    def shard_images(self) -> dict[str, bytes]:
        """Shard members of the finished record: member name -> stored bytes."""
        return {self.member(role, im): im.prepared.data for role, im in self.images.items()}

    def _common_fields(self, got: str) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "source": self.item.source_info(),
            "images": [im.prepared.image_info(role, self.member(role, im)) for role, im in self.images.items()],
            "got": got,
            "provenance": self.finished_provenance(),
            "source_description": self.source_description,
        }

    def record_fields(self, got: str) -> dict[str, Any]:
        """The record's fields for GoT text `got` (each kind adds its own to `_common_fields`)."""
        raise NotImplementedError


@dataclass(kw_only=True)
class EditWork(EditWorkBase):
    kind: ClassVar[str] = "edit"
    record: EditRecord | None = None

    def record_fields(self, got: str) -> dict[str, Any]:
        step = self.steps[0]
        return {
            **self._common_fields(got),
            "instruction": step.instruction,
            "reinstructions": step.reinstructions,
            "target_description": self.final_description,
            "edit": step.edit_op(),
        }


@dataclass(kw_only=True)
class MultiTurnWork(EditWorkBase):
    kind: ClassVar[str] = "multiturn"
    record: MultiTurnRecord | None = None

    def record_fields(self, got: str) -> dict[str, Any]:
        return {
            **self._common_fields(got),
            "combined_instruction": self.combined_instruction,
            "step_images": self.step_images,
            "instructions": [step.instruction for step in self.steps],
            "reinstructions": [step.reinstructions for step in self.steps]
            if any(step.reinstructions for step in self.steps) else None,
            "final_description": self.final_description,
            "steps": [step.edit_op() for step in self.steps],
        }


WORK_KINDS: dict[str, type[Work]] = {"t2i": T2IWork, "edit": EditWork, "multiturn": MultiTurnWork}
