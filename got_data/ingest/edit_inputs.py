"""What an edit input is made of in each format: a source image and its turns (EditItems).

Single-turn pairs (`EditInputs`):
- manifest (JSONL/Parquet): a source image, a target image, an instruction and an optional edit type
  per row (columns named by the caller; image cells as in ManifestFile);
- folder: one sub-folder per pair, `KEY/source.*`, `KEY/target.*`, `KEY/instruction.txt` and an
  optional `KEY/edit_type.txt`;
- WebDataset shards: samples `KEY.source.<ext>`, `KEY.target.<ext>`, the instruction in
  `KEY.instruction.txt` or `KEY.txt` or the "instruction" field of `KEY.json` (which may also hold
  "edit_type").
Multi-turn sequences (`MultiTurnInputs`): a manifest with a source image column and, per row, either
a `turns` list of {"instruction", "image", "edit_type"?}, or one combined `instruction` for every
step with the `final` image and optional `intermediates` {"K": image} (the image after step K).

Every input ends as one EditItem, bad ones with a `problem`, so nothing is lost silently; an image,
`instruction.txt` or `edit_type.txt` the input roots refuse rejects its input unread.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, caption_from_bytes, caption_from_value
from got_data.ingest.edit_items import (
    EMPTY_INSTRUCTION,
    NO_TURNS,
    CombinedSteps,
    EditItem,
    EditTurn,
    clean_instruction,
    edit_problem,
    normalize_edit_type,
)
from got_data.ingest.folder import FolderFiles, FolderInputs
from got_data.ingest.items import IMAGE_EXTENSIONS, INVALID_ROW, MISSING_FILE, BytesImage, ImageSource
from got_data.ingest.manifest import JSONL_SUFFIXES, PARQUET_SUFFIXES, ManifestFile, RowInputs
from got_data.ingest.paths import PathRefused
from got_data.ingest.webdataset import SampleInputs

AMBIGUOUS_IMAGE = "ambiguous_image"
# (image, problem): what a manifest cell, a folder or a shard gives for one image role.
ImageCell = tuple[ImageSource | None, tuple[str, str] | None]
_ROLE_STEMS = ("source", "target")
_MANIFESTS = ", ".join(JSONL_SUFFIXES + PARQUET_SUFFIXES)


def build_edit_item(
    dataset: str,
    input_ref: str,
    source: ImageCell,
    turns: list[tuple[Any, ImageCell, Any]],
    multiturn: bool,
    max_instruction_chars: int,
) -> EditItem:
    """An EditItem from raw parts: (instruction value or (text, error), image cell, edit-type value) per turn.

    The first fault found (source image, no turns, then per turn: instruction, image) becomes the
    item's problem, with the role it concerns in the detail.
    """
    raw: list[str] = []
    checked: list[EditTurn] = []
    problem: tuple[str, str] | None = None
    if not turns:
        problem = (NO_TURNS, "the input has no edit turns")
    for n, (instruction_value, (image, image_problem), edit_type) in enumerate(turns, start=1):
        role = f"turn {n}" if multiturn else "target"
        if isinstance(instruction_value, tuple):  # already read: (text, error), as read_caption_file gives
            instruction, error = instruction_value
        else:
            instruction, error = caption_from_value(instruction_value, max_instruction_chars)
        raw.append(instruction or "")
        if problem is not None:
            continue
        if instruction is None or not clean_instruction(instruction):
            why = f" ({error})" if error else " (only control tokens)" if instruction else ""
            problem = (EMPTY_INSTRUCTION, f"the {role} instruction is empty{why}")
        elif image_problem is not None or image is None:
            reason, detail = image_problem or (MISSING_FILE, "no image")
            problem = (reason, f"{role} image: {detail}")
        else:
            checked.append(EditTurn(instruction=instruction, image=image, edit_type=normalize_edit_type(edit_type)))
    source_image, source_problem = source
    if source_problem is not None or source_image is None:
        reason, detail = source_problem or (MISSING_FILE, "no image")
        problem = (reason, f"source image: {detail}")
    if problem is not None:
        return edit_problem(dataset, input_ref, *problem, multiturn=multiturn, instructions=tuple(raw))
    return EditItem(input_ref=input_ref, dataset=dataset, source=source_image, turns=tuple(checked),
                    multiturn=multiturn)


class EditInputs(FolderInputs[EditItem], RowInputs[EditItem], SampleInputs[EditItem]):
    """Single-turn edit pairs. The edit-type column is optional: used when the manifest has it, row by
    row in JSONL (a non-default name must exist in the first row or schema)."""

    record_kind = "edit"
    name = "edit pairs"
    accepted = (f"an edit manifest ({_MANIFESTS}), a folder of KEY/source.*, KEY/target.*, KEY/instruction.txt "
                "folders, or .tar shards")

    def __init__(self, source_column: str = "source", target_column: str = "target",
                 instruction_column: str = "instruction", edit_type_column: str | None = "edit_type",
                 max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS) -> None:
        self.source_column = source_column
        self.target_column = target_column
        self.instruction_column = instruction_column
        self.edit_type_column = edit_type_column
        self.max_instruction_chars = max_instruction_chars

    def problem(self, dataset: str, input_ref: str, reason: str, detail: str) -> EditItem:
        return edit_problem(dataset, input_ref, reason, detail)

    def folder_inputs(self, rel: str, names: Sequence[str]) -> Iterator[tuple[str, Any]]:
        if rel and any(_is_pair_file(name) for name in names):
            yield rel.rstrip("/"), tuple(names)

    def from_folder(self, dataset: str, input_ref: str, parts: Any, files: FolderFiles) -> EditItem:
        names: tuple[str, ...] = parts
        try:
            cells = {stem: _folder_image(files, names, stem) for stem in _ROLE_STEMS}
            instruction: Any = (None, "no instruction.txt in the folder")
            if "instruction.txt" in names:
                instruction = files.text("instruction.txt", self.max_instruction_chars)
            edit_type = files.text("edit_type.txt", 100)[0] if "edit_type.txt" in names else None
        except PathRefused as exc:
            return edit_problem(dataset, input_ref, exc.reason, exc.detail)
        turn = (instruction, cells["target"], edit_type)
        return build_edit_item(dataset, input_ref, cells["source"], [turn], False, self.max_instruction_chars)

    def manifest_columns(self, file: ManifestFile) -> dict[str, str | None]:
        columns = {"source": self.source_column, "target": self.target_column, "instruction": self.instruction_column}
        for what, column in columns.items():
            file.require(column, what, f"the {what} column option")
        edit_type_column = self.edit_type_column
        if edit_type_column is not None and edit_type_column not in file.columns():
            if edit_type_column != "edit_type":
                file.require(edit_type_column, "edit type", "the edit type column option")
            if file.kind == "parquet":  # a JSONL row may still have it when the first one has not
                edit_type_column = None
        return {**columns, "edit_type": edit_type_column}

    def from_row(self, dataset: str, input_ref: str, row: dict[str, Any], columns: dict[str, str | None],
                 file: ManifestFile) -> EditItem:
        source = file.image(row.get(self.source_column), self.source_column)
        target = file.image(row.get(self.target_column), self.target_column)
        edit_type = row.get(columns["edit_type"]) if columns["edit_type"] else None
        turn = (row.get(self.instruction_column), target, edit_type)
        return build_edit_item(dataset, input_ref, source, [turn], False, self.max_instruction_chars)

    def wanted_member(self, ext: str) -> bool:
        stem, _, image_ext = ext.partition(".")
        return ext in ("instruction.txt", "txt", "json") or (stem in _ROLE_STEMS and image_ext in IMAGE_EXTENSIONS)

    def from_sample(self, dataset: str, input_ref: str, key: str, members: dict[str, bytes]) -> EditItem:
        meta: dict = {}
        if "json" in members:
            try:
                loaded = json.loads(members["json"])
                meta = loaded if isinstance(loaded, dict) else {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                meta = {}
        text_member = members.get("instruction.txt", members.get("txt"))
        instruction: Any = meta.get("instruction")
        if text_member is not None:
            instruction = caption_from_bytes(text_member, self.max_instruction_chars)
        cells = {stem: _member_image(members, stem) for stem in _ROLE_STEMS}
        turn = (instruction, cells["target"], meta.get("edit_type"))
        return build_edit_item(dataset, input_ref, cells["source"], [turn], False, self.max_instruction_chars)


class MultiTurnInputs(RowInputs[EditItem]):
    """Multi-turn edit sequences, from manifests only: a source image column and, per row, either a
    turns column, each turn an object {"instruction", "image", "edit_type"?} (a JSON string holding
    that list is accepted too), or a combined instruction with the final image and the intermediate
    images that exist, keyed by the step they follow (`build_combined_item`)."""

    record_kind = "multiturn"
    name = "multi-turn edits"
    accepted = (f"a manifest ({_MANIFESTS}) with a source column and a turns column, or an instruction and a "
                "final column (one combined instruction)")

    def __init__(self, source_column: str = "source", turns_column: str = "turns",
                 max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS, instruction_column: str = "instruction",
                 final_column: str = "final", intermediates_column: str = "intermediates") -> None:
        self.source_column = source_column
        self.turns_column = turns_column
        self.max_instruction_chars = max_instruction_chars
        self.instruction_column = instruction_column
        self.final_column = final_column
        self.intermediates_column = intermediates_column

    def problem(self, dataset: str, input_ref: str, reason: str, detail: str) -> EditItem:
        return edit_problem(dataset, input_ref, reason, detail, multiturn=True)

    def manifest_columns(self, file: ManifestFile) -> dict[str, str | None]:
        file.require(self.source_column, "source", "the source column option")
        present = file.columns()
        if self.turns_column not in present and self.instruction_column not in present:
            raise InputError(
                f"manifest {file.path} has neither a turns column {self.turns_column!r} nor a combined instruction "
                f"column {self.instruction_column!r}; its columns are {sorted(present)}. Name the right one with "
                "--turns-column or --instruction-column.")
        if self.instruction_column in present:
            file.require(self.final_column, "final image", "the final column option")
        wanted = {"source": self.source_column, "turns": self.turns_column, "instruction": self.instruction_column,
                  "final": self.final_column, "intermediates": self.intermediates_column}
        # Parquet reads only the columns it has; a JSONL row may hold any of them
        return {what: column if file.kind == "jsonl" or column in present else None for what, column in wanted.items()}

    def from_row(self, dataset: str, input_ref: str, row: dict[str, Any], columns: dict[str, str | None],
                 file: ManifestFile) -> EditItem:
        source = file.image(row.get(self.source_column), self.source_column)
        combined = row.get(self.instruction_column)
        turns = _turn_list(row.get(self.turns_column))
        if combined is not None and turns:
            return self.problem(dataset, input_ref, INVALID_ROW,
                                f"the row has both turns ({self.turns_column!r}) and a combined instruction "
                                f"({self.instruction_column!r}); give one")
        if combined is not None:
            return self._combined(dataset, input_ref, row, source, combined, file)
        if turns is None:
            return self.problem(dataset, input_ref, INVALID_ROW,
                                f"column {self.turns_column!r} is not a list of turn objects")
        parts = [(t.get("instruction"), file.image(t.get("image"), "image"), t.get("edit_type")) for t in turns]
        return build_edit_item(dataset, input_ref, source, parts, True, self.max_instruction_chars)

    def _combined(self, dataset: str, input_ref: str, row: dict[str, Any], source: ImageCell, instruction: Any,
                  file: ManifestFile) -> EditItem:
        intermediates = _intermediate_cells(row.get(self.intermediates_column))
        if isinstance(intermediates, str):
            return self.problem(dataset, input_ref, INVALID_ROW, f"column {self.intermediates_column!r}: {intermediates}")
        cells = [(step, file.image(value, self.intermediates_column)) for step, value in intermediates]
        final = file.image(row.get(self.final_column), self.final_column)
        return build_combined_item(dataset, input_ref, source, instruction, final, cells, self.max_instruction_chars)


def build_combined_item(dataset: str, input_ref: str, source: ImageCell, instruction_value: Any, final: ImageCell,
                        intermediates: list[tuple[int, ImageCell]], max_instruction_chars: int) -> EditItem:
    """A multi-turn EditItem from one combined instruction, the final image and the intermediate
    images (each keyed by the step it follows). The first fault found (source image, instruction,
    final image, then each intermediate) becomes the item's problem."""
    instruction, error = caption_from_value(instruction_value, max_instruction_chars)
    problem = _cell_problem("source image", source)
    if problem is None and (instruction is None or not clean_instruction(instruction)):
        why = f" ({error})" if error else " (only control tokens)" if instruction else ""
        problem = (EMPTY_INSTRUCTION, f"the combined instruction is empty{why}")
    problem = problem or _cell_problem("final image", final)
    for step, cell in intermediates:
        problem = problem or _cell_problem(f"image after step {step}", cell)
    source_image, final_image = source[0], final[0]
    if problem is not None or instruction is None or source_image is None or final_image is None:
        return edit_problem(dataset, input_ref, *(problem or (MISSING_FILE, "no image")), multiturn=True,
                            instructions=(instruction or "",))
    later = tuple((step, image) for step, (image, _) in intermediates if image is not None)
    return EditItem(input_ref=input_ref, dataset=dataset, source=source_image, multiturn=True,
                    combined=CombinedSteps(instruction=instruction, final=final_image, intermediates=later))


def _cell_problem(what: str, cell: ImageCell) -> tuple[str, str] | None:
    image, problem = cell
    if problem is None and image is not None:
        return None
    reason, detail = problem or (MISSING_FILE, "no image")
    return reason, f"{what}: {detail}"


def _intermediate_cells(value: Any) -> list[tuple[int, Any]] | str:
    """A row's intermediate images as (step it follows, image cell), steps ascending; an empty or
    missing cell is none. A string is what is wrong with the cell."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return "not a JSON object of step number -> image"
    if value is None:
        return []
    if not isinstance(value, dict):
        return f"a {type(value).__name__}, not an object of step number -> image"
    cells: list[tuple[int, Any]] = []
    for key, image in value.items():
        step = str(key).strip()
        if not step.isdigit() or int(step) < 1:
            return f"key {str(key)[:40]!r} is not a step number (1 = the image after the first step)"
        cells.append((int(step), image))
    steps = [step for step, _ in cells]
    if len(set(steps)) != len(steps):
        return f"step numbers repeat: {sorted(steps)}"
    return sorted(cells, key=lambda cell: cell[0])


def _folder_image(files: FolderFiles, names: Sequence[str], stem: str) -> ImageCell:
    found = sorted(name for name in names if _is_pair_file(name) and name.partition(".")[0] == stem)
    if not found:
        return None, (MISSING_FILE, f"no {stem}.* image in the folder")
    if len(found) > 1:
        return None, (AMBIGUOUS_IMAGE, f"{len(found)} {stem} images ({', '.join(found)}); keep one")
    try:
        return files.image(found[0]), None
    except PathRefused as exc:
        return None, (exc.reason, exc.detail)


def _turn_list(value: Any) -> list[dict] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        return None
    return value


def _is_pair_file(name: str) -> bool:
    stem, _, ext = name.partition(".")
    return name == "instruction.txt" or (stem in _ROLE_STEMS and ext.lower() in IMAGE_EXTENSIONS)


def _member_image(members: dict[str, bytes], stem: str) -> ImageCell:
    found = sorted(ext for ext in members if ext.partition(".")[0] == stem)
    if not found:
        return None, (MISSING_FILE, f"the sample has no {stem}.* member (members: {sorted(members) or 'none we read'})")
    if len(found) > 1:
        return None, (AMBIGUOUS_IMAGE, f"{len(found)} {stem} members ({', '.join(found)}); keep one")
    return BytesImage(members[found[0]]), None
