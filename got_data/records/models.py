"""The record kinds a got-data shard carries, with their invariants enforced on construction.

A record that validates is safe to train on: its boxes are in range, its GoT text parses, every box
in the text belongs to a structured object and the reverse, and no chat/vision control token hides
in any text a model will read.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticSerializationError, PydanticUndefined, to_json

from got_data.errors import CodecError, RecordError
from got_data.records.boxes import Box
from got_data.records.codec import find_special_tokens, find_unsafe_characters, parse_got

SCHEMA_VERSION: Final = "1.2"
# Versions this got-data reads and validates: 1.1 added the optional verification scores
# (GroundedObject.box_scores, EditOp.region_scores) and the placed objects of edit records
# (EditRecord.objects, MultiTurnRecord.objects) and per-turn rewrites (MultiTurnRecord.reinstructions);
# 1.2 added multi-turn records split from one combined instruction (MultiTurnRecord.combined_instruction,
# step_images); a 1.0 record is a 1.1 record without them, a 1.1 record a 1.2 record without them.
READABLE_SCHEMA_VERSIONS: Final = ("1.0", "1.1", "1.2")
KEY_LENGTH = 24


def make_key(kind: str, dataset: str, input_ref: str, *image_sha256: str) -> str:
    """A stable key from a record's input identity: the same input gives the same key on every rerun."""
    digest = hashlib.sha256("\x1f".join((kind, dataset, input_ref, *image_sha256)).encode("utf-8"))
    return digest.hexdigest()[:KEY_LENGTH]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_unsafe_characters(value: str, what: str) -> str:
    found = find_unsafe_characters(value)
    if found:
        raise ValueError(f"{what} contains the control character U+{ord(found[0]):04X} (NUL or bidi control)")
    return value


def _safe_text(value: str, what: str) -> str:
    """Text a model or trainer reads: no `<|...|>` token, NUL or bidi control (untrusted text is cleaned
    with `strip_special_tokens` before it gets here)."""
    found = find_special_tokens(value)
    if found:
        raise ValueError(f"{what} contains special token {found[0]}")
    return _no_unsafe_characters(value, what)


class ImageInfo(_Strict):
    """One image member of a sample, as stored in the shard."""

    role: str = Field(description="image (T2I), source, target, or turnN (multi-turn)")
    member: str = Field(description="member suffix in the shard sample, e.g. 'jpg' or 'source.png'")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the stored member's bytes")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    format: Literal["JPEG", "PNG"]
    original_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the input file's bytes")
    normalization: list[str] = Field(
        default_factory=list, description="steps applied to the input (e.g. exif_transpose, cmyk_to_rgb); empty = bytes kept"
    )


class SourceInfo(_Strict):
    dataset: str = Field(min_length=1)
    input_ref: str = Field(min_length=1, description="where the input came from: relative path, manifest row, shard+key")
    original_caption: str | None = Field(
        default=None,
        description="the input's caption or instruction, verbatim (untrusted: never fed to a model unsanitised, "
        "escaped where shown)",
    )


class ModelInfo(_Strict):
    role: str
    name: str
    revision: str | None = None
    family: str | None = None


class StageUsage(_Strict):
    requests: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)


class Provenance(_Strict):
    pipeline: str
    pipeline_version: str
    got_data_version: str
    models: list[ModelInfo] = Field(default_factory=list)
    prompt_hashes: dict[str, str] = Field(default_factory=dict, description="stage -> sha256 of its prompt template")
    sampling: dict[str, dict[str, Any]] = Field(default_factory=dict, description="stage -> sampling parameters")
    packages: dict[str, str] = Field(default_factory=dict, description="package -> version")
    tokens: dict[str, StageUsage] = Field(default_factory=dict, description="stage -> token counts")
    started_at: datetime
    finished_at: datetime


def _scores_match(scores: list[float] | None, boxes: list[Box], what: str) -> None:
    if scores is not None and len(scores) != len(boxes):
        raise ValueError(f"{len(scores)} verification score(s) for {len(boxes)} {what}")


VerificationScore = Annotated[float, Field(ge=-1, le=1)]


class GroundedObject(_Strict):
    phrase: str = Field(min_length=1)
    boxes: list[Box] = Field(min_length=1)
    span: tuple[int, int] = Field(description="[start, end) of the phrase in the GoT text")
    box_scores: list[VerificationScore] | None = Field(
        default=None, description="schema 1.1: per box, the verify stage's p(yes) - p(no) on its crop; "
        "absent when the boxes were not verified")

    @model_validator(mode="after")
    def _aligned_scores(self) -> "GroundedObject":
        _scores_match(self.box_scores, self.boxes, "boxes")
        return self


class PlacedObject(GroundedObject):
    """An object an edit GoT names (in a description), boxed on the image it is named about."""

    image: str = Field(min_length=1, description="role of the image the boxes are on: source, target or turnN")


def _objects_match_refs(got: str, objects: list[GroundedObject], refs: dict[tuple[int, int], Any]) -> None:
    """Each object's span points at its phrase in `got` and at a grounded ref there with the same boxes,
    and no two objects share a span (so the objects' boxes are the refs' boxes, counted once)."""
    if len({obj.span for obj in objects}) != len(objects):
        raise ValueError("two objects share one span of the GoT text")
    for obj in objects:
        start, end = obj.span
        if not (0 <= start < end <= len(got)) or got[start:end] != obj.phrase:
            raise ValueError(f"span {list(obj.span)} of object {obj.phrase!r} does not point at it in the GoT text")
        ref = refs.get(obj.span)
        if ref is None:
            raise ValueError(f"object {obj.phrase!r} at {list(obj.span)} is not grounded in the GoT text")
        if list(ref.boxes) != obj.boxes:
            raise ValueError(f"object {obj.phrase!r}: boxes differ from those in the GoT text")


class EditOp(_Strict):
    """One edit: what changes, where (boxes relative to the image the edit applies to), and how."""

    edit_type: str | None = None
    target_object: str = Field(min_length=1, description="the object edited (for add: the object added)")
    new_object: str | None = Field(default=None, description="for replace edits: what replaces target_object")
    regions: list[Box] = Field(min_length=1, description="edit region(s); whole image (0,0),(999,999) for global edits")
    region_scores: list[VerificationScore] | None = Field(
        default=None, description="schema 1.1: per region, the verify stage's p(yes) - p(no) on its crop; "
        "absent when the regions were not verified")
    change: str = Field(min_length=1)
    object_description: str | None = Field(default=None, description="brief description of the region's crop before")
    new_object_description: str | None = Field(default=None, description="brief description of the region's crop after")

    @model_validator(mode="after")
    def _safe_texts(self) -> "EditOp":
        _scores_match(self.region_scores, self.regions, "regions")
        for name in ("edit_type", "target_object", "new_object", "change", "object_description", "new_object_description"):
            value = getattr(self, name)
            if value is not None:
                _safe_text(value, name.replace("_", " "))
        return self


class _RecordBase(_Strict):
    schema_version: Literal["1.0", "1.1", "1.2"] = SCHEMA_VERSION
    key: str = Field(pattern=r"^[0-9a-f]{24}$")
    source: SourceInfo
    images: list[ImageInfo] = Field(min_length=1)
    got: str = Field(min_length=1, description="the GoT text, Qwen2-VL grounding convention")
    provenance: Provenance

    @field_validator("got")
    @classmethod
    def _got_characters(cls, got: str) -> str:
        return _no_unsafe_characters(got, "GoT text")  # its tokens are checked by parse_got

    @field_validator("images")
    @classmethod
    def _unique_members(cls, images: list[ImageInfo]) -> list[ImageInfo]:
        members = [im.member for im in images]
        if len(set(members)) != len(members):
            raise ValueError(f"image members repeat: {members}")
        return images

    def image(self, role: str) -> ImageInfo:
        for im in self.images:
            if im.role == role:
                return im
        raise RecordError(f"record {self.key} has no {role!r} image")

    def _got_boxes_must_be(self, boxes: list[Box], objects: list[PlacedObject] | None = None) -> None:
        """The GoT's boxes are the placed `objects`' (at their spans) and, in text order, `boxes` (the
        edit regions); a placed object's image must be one of the record's."""
        try:
            parsed = parse_got(self.got)
        except CodecError as exc:
            raise ValueError(f"GoT text: {exc}") from exc
        if objects is not None and self.schema_version == "1.0":
            raise ValueError("placed objects need schema_version 1.1")
        roles = {im.role for im in self.images}
        for obj in objects or []:
            if obj.image not in roles:
                raise ValueError(f"object {obj.phrase!r} is placed on image {obj.image!r}, not one of {sorted(roles)}")
        _objects_match_refs(self.got, list(objects or []), {ref.got_span: ref for ref in parsed.refs})
        placed = {obj.span for obj in objects or []}
        regions = [box for ref in parsed.refs if ref.got_span not in placed for box in ref.boxes]
        if regions != boxes:
            raise ValueError(
                f"boxes in the GoT text {[b.render() for b in regions]} differ from the structured boxes "
                f"{[b.render() for b in boxes]}"
            )

    def _roles_must_be(self, roles: list[str]) -> None:
        actual = [im.role for im in self.images]
        if actual != roles:
            raise ValueError(f"images must have roles {roles} in that order, got {actual}")

    def object_count(self) -> int:
        raise NotImplementedError


class T2IRecord(_RecordBase):
    kind: Literal["t2i"] = "t2i"
    prompt: str = Field(min_length=1, description="concise prompt, about one sentence")
    description: str = Field(min_length=1, description="the detailed description = the GoT text without grounding tokens")
    objects: list[GroundedObject] = Field(min_length=1)

    @model_validator(mode="after")
    def _invariants(self) -> "T2IRecord":
        self._roles_must_be(["image"])
        _safe_text(self.prompt, "prompt")
        _safe_text(self.description, "description")
        try:
            parsed = parse_got(self.got)
        except CodecError as exc:
            raise ValueError(f"GoT text: {exc}") from exc
        if parsed.plain != self.description:
            raise ValueError("GoT text without its grounding tokens differs from the description")
        _objects_match_refs(self.got, list(self.objects), {ref.got_span: ref for ref in parsed.refs})
        if len(parsed.refs) != len(self.objects):
            raise ValueError(
                f"GoT text grounds {len(parsed.refs)} phrase(s) but the record lists {len(self.objects)} object(s)"
            )
        return self

    def object_count(self) -> int:
        return len(self.objects)

    def all_boxes(self) -> list[Box]:
        """Every grounded object's boxes, in object order: the boxes of the GoT text."""
        return [box for obj in self.objects for box in obj.boxes]


class EditRecord(_RecordBase):
    kind: Literal["edit"] = "edit"
    instruction: str = Field(min_length=1)
    reinstructions: list[str] = Field(default_factory=list, description="rewrites of the instruction, first concise")
    source_description: str = Field(min_length=1)
    target_description: str = Field(min_length=1)
    edit: EditOp
    objects: list[PlacedObject] | None = Field(
        default=None, description="schema 1.1: every other object the GoT names, boxed on the image it is named "
        "about (source or target); absent when the run placed none")

    @model_validator(mode="after")
    def _invariants(self) -> "EditRecord":
        self._roles_must_be(["source", "target"])
        _safe_text(self.instruction, "instruction")
        for name in ("source_description", "target_description"):
            _safe_text(getattr(self, name), name.replace("_", " "))
        for text in self.reinstructions:
            _safe_text(text, "reinstruction")
        self._got_boxes_must_be(list(self.edit.regions), self.objects)
        return self

    def object_count(self) -> int:
        """The GoT's boxes: the edit region(s) and the placed objects' (what the index's num_boxes counts)."""
        return len(self.all_boxes())

    def all_boxes(self) -> list[Box]:
        """The edit region(s), then every placed object's boxes."""
        return [*self.edit.regions, *(box for obj in self.objects or [] for box in obj.boxes)]


class MultiTurnRecord(_RecordBase):
    kind: Literal["multiturn"] = "multiturn"
    instructions: list[str] = Field(min_length=1)
    source_description: str = Field(min_length=1)
    final_description: str = Field(min_length=1)
    steps: list[EditOp] = Field(min_length=1, description="one per turn, in order")
    objects: list[PlacedObject] | None = Field(
        default=None, description="schema 1.1: every other object the GoT names, boxed on the image it is named "
        "about (source or the last turn's); absent when the run placed none")
    reinstructions: list[list[str]] | None = Field(
        default=None, description="schema 1.1: per turn, rewrites of its instruction, first concise (a turn whose "
        "rewrite failed has none); absent when the run made none")
    combined_instruction: str | None = Field(
        default=None, exclude_if=lambda value: value is None,
        description="schema 1.2: the one instruction the input gave for every step (cleaned), which the LLM split "
        "into `instructions`; absent when the input came one instruction per turn")
    step_images: list[bool] | None = Field(
        default=None, exclude_if=lambda value: value is None,
        description="schema 1.2, with combined_instruction: per step, whether the input had the image after it "
        "(image role turnN for step N); the last step's is the final image, always there. Absent: every step has "
        "its image")

    @model_validator(mode="after")
    def _invariants(self) -> "MultiTurnRecord":
        if len(self.steps) != len(self.instructions):
            raise ValueError(f"{len(self.instructions)} instruction(s) but {len(self.steps)} step(s)")
        self._combined_must_hold()
        self._roles_must_be(["source"] + [f"turn{n}" for n in self.image_steps()])
        for n, text in enumerate(self.instructions, 1):
            _safe_text(text, f"instruction {n}")
        if self.reinstructions is not None:
            if self.schema_version == "1.0":
                raise ValueError("per-turn reinstructions need schema_version 1.1")
            if len(self.reinstructions) != len(self.instructions):
                raise ValueError(f"{len(self.instructions)} instruction(s) but rewrites for {len(self.reinstructions)} turn(s)")
            for n, rewrites in enumerate(self.reinstructions, 1):
                for text in rewrites:
                    _safe_text(text, f"reinstruction of turn {n}")
        for name in ("source_description", "final_description"):
            _safe_text(getattr(self, name), name.replace("_", " "))
        self._got_boxes_must_be([box for step in self.steps for box in step.regions], self.objects)
        return self

    def _combined_must_hold(self) -> None:
        if (self.combined_instruction is None) != (self.step_images is None):
            raise ValueError("combined_instruction and step_images come together (a record split from one instruction)")
        if self.combined_instruction is None or self.step_images is None:
            return
        if self.schema_version in ("1.0", "1.1"):
            raise ValueError("a record split from one combined instruction needs schema_version 1.2")
        _safe_text(self.combined_instruction, "combined instruction")
        if len(self.step_images) != len(self.steps):
            raise ValueError(f"step_images has {len(self.step_images)} entries for {len(self.steps)} step(s)")
        if not self.step_images[-1]:
            raise ValueError("the last step's image (the final image) must be there: step_images[-1] is true")

    def image_steps(self) -> list[int]:
        """The steps (1-based) whose image after them the record holds, as image role turnN."""
        if self.step_images is None:
            return list(range(1, len(self.steps) + 1))
        return [n for n, present in enumerate(self.step_images, 1) if present]

    def image_before_step(self, step: int) -> str:
        """The role of the latest image before step `step` (1-based): where that step was localized."""
        earlier = [n for n in self.image_steps() if n < step]
        return f"turn{earlier[-1]}" if earlier else "source"

    def object_count(self) -> int:
        """The GoT's boxes: every step's region(s) and the placed objects' (the index's num_boxes)."""
        return len(self.all_boxes())

    def all_boxes(self) -> list[Box]:
        """Every step's region(s), then every placed object's boxes."""
        return [*(box for step in self.steps for box in step.regions),
                *(box for obj in self.objects or [] for box in obj.boxes)]


Record = Annotated[Union[T2IRecord, EditRecord, MultiTurnRecord], Field(discriminator="kind")]
# The record kinds: the one registry every layer looks up (ingest, runner, view, CLI, world, training).
# Per-kind tables elsewhere are keyed by these names; tests/test_record_kinds.py checks each covers them all.
RecordKind = Literal["t2i", "edit", "multiturn"]
RECORD_TYPES: dict[str, type[_RecordBase]] = {"t2i": T2IRecord, "edit": EditRecord, "multiturn": MultiTurnRecord}
RECORD_KINDS: tuple[str, ...] = tuple(RECORD_TYPES)
_RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)


def parse_record(data: bytes | str | dict[str, Any]) -> T2IRecord | EditRecord | MultiTurnRecord:
    """Validate a record from JSON (bytes/str) or a dict; raises RecordError with pydantic's reasons.

    A dict is validated as the JSON it dumps to, in the record's own field order with its defaults
    filled (`_record_json`): the record then dumps to those very bytes, so the shard writer's check
    that a record re-validates from its own JSON finds them already validated (`validated_json`)."""
    try:
        if isinstance(data, dict):
            encoded = _record_json(data)
            if encoded is None:
                return _RECORD_ADAPTER.validate_python(data)
            data = encoded
        record = _RECORD_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise RecordError(_summarize(exc)) from exc
    if isinstance(data, bytes):
        _remember_valid(data)
    return record


# The JSON of records that validated lately, newest last. Validation is a pure function of the
# bytes, so the same bytes need no second pass; the cap keeps it to the records in flight.
_VALIDATED_JSON: OrderedDict[bytes, None] = OrderedDict()
_VALIDATED_CAP = 1024


def _remember_valid(data: bytes) -> None:
    _VALIDATED_JSON[data] = None
    _VALIDATED_JSON.move_to_end(data)
    if len(_VALIDATED_JSON) > _VALIDATED_CAP:
        _VALIDATED_JSON.popitem(last=False)


def validated_json(data: bytes) -> bool:
    """Whether `parse_record` validated exactly these bytes lately (in this process)."""
    return data in _VALIDATED_JSON


def _record_json(fields: dict[str, Any]) -> bytes | None:
    """`fields` as the JSON its record dumps to: the kind's fields in declaration order, defaults filled,
    excluded values left out. None when that cannot be made (no known kind, a field the kind lacks, a
    value JSON cannot hold): the dict is then validated as it is, and validation names the fault."""
    model = RECORD_TYPES.get(fields.get("kind"))  # type: ignore[arg-type]
    if model is None or not fields.keys() <= model.model_fields.keys():
        return None
    ordered: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = fields[name] if name in fields else info.get_default(call_default_factory=True)
        if value is PydanticUndefined or (info.exclude_if is not None and info.exclude_if(value)):
            continue
        ordered[name] = value
    try:
        return to_json(ordered)
    except PydanticSerializationError:
        return None


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more
