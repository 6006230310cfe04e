"""Sources of edit inputs: manifests, a folder layout and WebDataset shards of edit pairs, and
manifests of multi-turn edit sequences.

- single-turn manifest (JSONL/Parquet): a source image, a target image, an instruction and an
  optional edit type per row (columns named by the caller; image cells as in ManifestFile);
- multi-turn manifest: a source image and a `turns` list of {"instruction", "image", "edit_type"?};
- folder: one sub-folder per pair, `KEY/source.*`, `KEY/target.*`, `KEY/instruction.txt` and an
  optional `KEY/edit_type.txt`;
- WebDataset shards: samples `KEY.source.<ext>`, `KEY.target.<ext>`, the instruction in
  `KEY.instruction.txt` or `KEY.txt` or the "instruction" field of `KEY.json` (which may also hold
  "edit_type").

Every input ends as one EditItem, bad ones with a `problem`, so nothing is lost silently. Files
are read only inside the input folder, the manifest's folder or an allowed folder (InputRoots): an
image, `instruction.txt` or `edit_type.txt` that links elsewhere or is not a regular file rejects
its input (`outside_input_root`, `not_a_regular_file`) unread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, caption_from_bytes, caption_from_value, read_caption_file
from got_data.ingest.edit_items import (
    EMPTY_INSTRUCTION,
    NO_TURNS,
    EditItem,
    EditTurn,
    clean_instruction,
    edit_problem,
    normalize_edit_type,
)
from got_data.ingest.items import (
    IMAGE_EXTENSIONS,
    INVALID_ROW,
    MISSING_FILE,
    BytesImage,
    ImageSource,
    PathImage,
    Source,
    dataset_name,
)
from got_data.ingest.manifest import ManifestFile, row_problem
from got_data.ingest.paths import InputRoots, PathRefused
from got_data.ingest.webdataset import ShardSource, iter_tar_samples
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy

AMBIGUOUS_IMAGE = "ambiguous_image"
# (image, problem): what a manifest cell, a folder or a shard gives for one image role.
ImageCell = tuple[ImageSource | None, tuple[str, str] | None]


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


class _EditManifest(Source[EditItem]):
    """What both edit manifests share: the file, the dataset name, the instruction bound, the count."""

    def __init__(self, path: str | os.PathLike[str], dataset: str | None, max_instruction_chars: int,
                 allow_outside: Iterable[str | os.PathLike[str]]) -> None:
        self.file = ManifestFile(path, allow_outside)
        self.dataset = dataset or dataset_name(self.file.path)
        self.max_instruction_chars = max_instruction_chars

    def count(self) -> int:
        return self.file.count()


class EditManifestSource(_EditManifest):
    """Single-turn edit pairs, one per manifest row. The edit-type column is optional: used when the
    manifest has it, row by row in JSONL (a non-default name must exist in the first row or schema)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        source_column: str = "source",
        target_column: str = "target",
        instruction_column: str = "instruction",
        edit_type_column: str | None = "edit_type",
        dataset: str | None = None,
        max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        super().__init__(path, dataset, max_instruction_chars, allow_outside)
        self.columns = {"source": source_column, "target": target_column, "instruction": instruction_column}
        for what, column in self.columns.items():
            self.file.require(column, what, f"the {what} column option")
        if edit_type_column is not None and edit_type_column not in self.file.columns():
            if edit_type_column != "edit_type":
                self.file.require(edit_type_column, "edit type", "the edit type column option")
            if self.file.kind == "parquet":  # a JSONL row may still have it when the first one has not
                edit_type_column = None
        self.edit_type_column = edit_type_column

    def __iter__(self) -> Iterator[EditItem]:
        wanted = [*self.columns.values()] + ([self.edit_type_column] if self.edit_type_column else [])
        for ref, row in self.file.rows(wanted):
            bad = row_problem(row)
            if bad is not None:
                yield edit_problem(self.dataset, ref, INVALID_ROW, bad)
                continue
            source = self.file.image(row.get(self.columns["source"]), self.columns["source"])
            target = self.file.image(row.get(self.columns["target"]), self.columns["target"])
            edit_type = row.get(self.edit_type_column) if self.edit_type_column else None
            turn = (row.get(self.columns["instruction"]), target, edit_type)
            yield build_edit_item(self.dataset, ref, source, [turn], False, self.max_instruction_chars)


class MultiTurnManifestSource(_EditManifest):
    """Multi-turn edit sequences: a source image column and a turns column, each turn an object
    {"instruction", "image", "edit_type"?} (a JSON string holding that list is accepted too)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        source_column: str = "source",
        turns_column: str = "turns",
        dataset: str | None = None,
        max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        super().__init__(path, dataset, max_instruction_chars, allow_outside)
        self.source_column = source_column
        self.turns_column = turns_column
        self.file.require(source_column, "source", "the source column option")
        self.file.require(turns_column, "turns", "the turns column option")

    def __iter__(self) -> Iterator[EditItem]:
        for ref, row in self.file.rows([self.source_column, self.turns_column]):
            bad = row_problem(row)
            turns = _turn_list(row.get(self.turns_column)) if bad is None else None
            if turns is None:
                bad = bad or f"column {self.turns_column!r} is not a list of turn objects"
                yield edit_problem(self.dataset, ref, INVALID_ROW, bad, multiturn=True)
                continue
            source = self.file.image(row.get(self.source_column), self.source_column)
            parts = [(t.get("instruction"), self.file.image(t.get("image"), "image"), t.get("edit_type")) for t in turns]
            yield build_edit_item(self.dataset, ref, source, parts, True, self.max_instruction_chars)


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


_ROLE_STEMS = ("source", "target")


class EditFolderSource(Source[EditItem]):
    """Every folder under `root` holding `source.*`, `target.*` or `instruction.txt` is one pair;
    input_ref is the folder's path relative to root. Hidden entries and symlinked folders are skipped;
    files are read only under `root` or a folder in `allow_outside`."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        dataset: str | None = None,
        max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root} is not a folder")
        self.roots = InputRoots.under(self.root, allow_outside)
        self.dataset = dataset or dataset_name(self.root)
        self.max_instruction_chars = max_instruction_chars

    def __iter__(self) -> Iterator[EditItem]:
        for rel, files in self._pair_folders(self.root, ""):
            yield self._item(rel, files)

    def count(self) -> int:
        return sum(1 for _ in self._pair_folders(self.root, ""))

    def _pair_folders(self, folder: Path, rel: str) -> Iterator[tuple[str, dict[str, str]]]:
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc
        files = {e.name: e.path for e in entries if not e.is_dir(follow_symlinks=False)}
        if rel and any(_is_pair_file(name) for name in files):
            yield rel.rstrip("/"), files
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self._pair_folders(Path(entry.path), f"{rel}{entry.name}/")

    def _item(self, rel: str, files: dict[str, str]) -> EditItem:
        try:
            cells = {stem: self._image(rel, files, stem) for stem in _ROLE_STEMS}
            instruction: Any = (None, "no instruction.txt in the folder")
            if "instruction.txt" in files:
                instruction = read_caption_file(self._confine(rel, files, "instruction.txt"), self.max_instruction_chars)
            edit_type = None
            if "edit_type.txt" in files:
                edit_type = read_caption_file(self._confine(rel, files, "edit_type.txt"), 100)[0]
        except PathRefused as exc:
            return edit_problem(self.dataset, rel, exc.reason, exc.detail)
        turn = (instruction, cells["target"], edit_type)
        return build_edit_item(self.dataset, rel, cells["source"], [turn], False, self.max_instruction_chars)

    def _confine(self, rel: str, files: dict[str, str], name: str) -> str:
        return self.roots.confine(files[name], shown=f"{rel}/{name}")

    def _image(self, rel: str, files: dict[str, str], stem: str) -> ImageCell:
        found = sorted(name for name in files if _is_pair_file(name) and name.partition(".")[0] == stem)
        if not found:
            return None, (MISSING_FILE, f"no {stem}.* image in the folder")
        if len(found) > 1:
            return None, (AMBIGUOUS_IMAGE, f"{len(found)} {stem} images ({', '.join(found)}); keep one")
        try:
            return PathImage(self._confine(rel, files, found[0]), ref=f"{rel}/{found[0]}"), None
        except PathRefused as exc:
            return None, (exc.reason, exc.detail)


def _is_pair_file(name: str) -> bool:
    stem, _, ext = name.partition(".")
    return name == "instruction.txt" or (stem in _ROLE_STEMS and ext.lower() in IMAGE_EXTENSIONS)


class EditWebDatasetSource(ShardSource[EditItem]):
    """Edit pairs in WebDataset shards (see the module doc for the member names)."""

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        dataset: str | None = None,
        max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        member_policy: MemberPolicy = DEFAULT_POLICY,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        super().__init__(paths, dataset=dataset, max_caption_chars=max_instruction_chars, member_policy=member_policy,
                         allow_outside=allow_outside)

    def _samples(self, shard: Path) -> Iterator[EditItem]:
        shard_ref = self.shard_ref(shard)
        for sample in iter_tar_samples(shard, _wanted_edit_member, self.member_policy):
            ref = f"{shard_ref}#{sample.key}"
            refused = sample.refusal()
            yield edit_problem(self.dataset, ref, *refused) if refused else self._edit_item(ref, sample.members)

    def _edit_item(self, ref: str, members: dict[str, bytes]) -> EditItem:
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
            instruction = caption_from_bytes(text_member, self.max_caption_chars)
        cells = {stem: _member_image(members, stem) for stem in _ROLE_STEMS}
        turn = (instruction, cells["target"], meta.get("edit_type"))
        return build_edit_item(self.dataset, ref, cells["source"], [turn], False, self.max_caption_chars)


def _wanted_edit_member(ext: str) -> bool:
    stem, _, image_ext = ext.partition(".")
    return ext in ("instruction.txt", "txt", "json") or (stem in _ROLE_STEMS and image_ext in IMAGE_EXTENSIONS)


def _member_image(members: dict[str, bytes], stem: str) -> ImageCell:
    found = sorted(ext for ext in members if ext.partition(".")[0] == stem)
    if not found:
        return None, (MISSING_FILE, f"the sample has no {stem}.* member (members: {sorted(members) or 'none we read'})")
    if len(found) > 1:
        return None, (AMBIGUOUS_IMAGE, f"{len(found)} {stem} members ({', '.join(found)}); keep one")
    return BytesImage(members[found[0]]), None
