"""A folder of inputs, walked recursively: what its files make is the record kind's (`FolderInputs`).

T2I: every image, with an optional sidecar `.txt` caption; edits: every folder holding
`source.*`/`target.*`/`instruction.txt` (see the kinds' modules). Only one directory's listing is
held at a time, so memory stays flat however large the tree is. Order is deterministic: within a
folder its own inputs (by file name), then its sub-folders by name. Hidden entries (names starting
with ".", e.g. macOS `._photo.jpg` resource forks) are skipped, and symlinked folders are not
followed, so a link cannot make the walk loop. Every file a kind names is opened through the
source's InputRoots: a symlink out of the folder, a FIFO or a dangling link becomes an item with a
problem, and the job goes on.

The folder may be a bucket prefix (`s3://bucket/images`): the same walk over the URI layer's
listings. A store has no links, so every object listed lies under the prefix (the prefix is the
input's root); images are read where they are decoded, texts through the same layer.

Narrowed to a range of the listing (`of_range`, an annotator's partition), the walk lists folders
only until the range's end and builds (reads the captions of) only the inputs in it.
"""

from __future__ import annotations

import itertools
import os
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

from got_data import uri
from got_data.errors import InputError
from got_data.ingest.captions import Caption, caption_from_bytes, read_caption_file
from got_data.ingest.items import ImageSource, InputKind, ItemT, ObjectImage, PathImage, RangedSource, dataset_name
from got_data.ingest.paths import InputRoots
from got_data.uri import Location


class FolderFiles:
    """The files of one folder of the walk, by name, opened as a kind's item builder asks.

    `rel` is the folder relative to the input root ("" at the root, else ending in "/"); a file is
    named in messages and image references by `rel + name`. Local files are confined by `roots`
    (PathRefused when refused); objects in a store are read through the URI layer.
    """

    def __init__(self, rel: str, paths: dict[str, str], roots: InputRoots | None) -> None:
        self.rel = rel
        self.paths = paths
        self.roots = roots

    @property
    def names(self) -> list[str]:
        """The folder's visible files (and links, FIFOs, devices by their names), sorted."""
        return sorted(self.paths)

    def image(self, name: str) -> ImageSource:
        """A lazy handle on the image file `name`; PathRefused when a local path may not be read."""
        if self.roots is None:
            return ObjectImage(self.paths[name])
        ref = self.rel + name
        return PathImage(self.roots.confine(self.paths[name], shown=ref), ref=ref)

    def text(self, name: str, max_chars: int, shown: str | None = None) -> Caption:
        """The text file `name` (a caption, an instruction) as (text, error), reading no more than
        `max_chars` can need; PathRefused when a local path may not be read (`shown` names it)."""
        if self.roots is None:
            return _object_text(self.paths[name], max_chars)
        real = self.roots.confine(self.paths[name], shown=shown or self.rel + name)
        return read_caption_file(real, max_chars)


def _object_text(object_uri: str, max_chars: int) -> Caption:
    limit = 4 * max_chars + 4  # as read_caption_file: no more than the kept characters need
    try:
        data = uri.read_bytes(object_uri, limit=limit)
        return caption_from_bytes(data, max_chars, total_bytes=uri.file_size(object_uri))
    except (OSError, uri.StorageError) as exc:
        return None, f"unreadable: {exc}"


class FolderInputs(InputKind[ItemT]):
    """What a record kind makes of a folder's files."""

    @abstractmethod
    def folder_inputs(self, rel: str, names: Sequence[str]) -> Iterator[tuple[str, Any]]:
        """(input_ref, what the input is made of) per input among one folder's file `names` (sorted),
        without reading any file: counting the inputs walks only listings."""

    @abstractmethod
    def from_folder(self, dataset: str, input_ref: str, parts: Any, files: FolderFiles) -> ItemT:
        """The item for one input of `folder_inputs`; a refused file becomes the item's problem."""


@dataclass(frozen=True)
class _Entry:
    name: str
    path: str  # a local path or an object's URI
    is_dir: bool
    folder: Path | Location  # where to list it, when it is a folder


class FolderSource(RangedSource[ItemT], Generic[ItemT]):
    """The inputs under `root` (a folder or a bucket prefix), as `items` makes them of its files.

    Local files are read only under `root` or a folder in `allow_outside` (symlinks resolved).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        items: FolderInputs[ItemT],
        dataset: str | None = None,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.items = items
        self.bucket = uri.location(root) if uri.is_remote(root) else None
        self.roots: InputRoots | None = None
        if self.bucket is not None:
            self.root: Path | str = self.bucket.uri
            if not uri.list_dir(self.bucket):
                raise InputError(f"{self.root} holds no objects; pass the prefix of an input folder")
        else:
            self.root = Path(root)
            if not self.root.is_dir():
                raise InputError(f"{self.root} is not a folder")
            self.roots = InputRoots.under(self.root, allow_outside)
        self.dataset = dataset or dataset_name(self.root)

    @property
    def location(self) -> str:
        return str(self.root) if self.bucket is not None else os.path.realpath(self.root)

    def __iter__(self) -> Iterator[ItemT]:
        for ref, parts, files in self._listing():
            yield self.items.from_folder(self.dataset, ref, parts, files)

    def count(self) -> int:
        """Walks the tree without reading any file (one directory listing per folder)."""
        return sum(1 for _ in self._listing())

    def _listing(self) -> Iterator[tuple[str, Any, FolderFiles]]:
        walk = self._walk(self.bucket or Path(self.root), "")
        return walk if self.span is None else itertools.islice(walk, *self.span)

    def _walk(self, folder: Path | Location, rel: str) -> Iterator[tuple[str, Any, FolderFiles]]:
        """(input_ref, its parts, its folder's files) per input, depth first."""
        entries = self._entries(folder)
        files = FolderFiles(rel, {e.name: e.path for e in entries if not e.is_dir}, self.roots)
        for ref, parts in self.items.folder_inputs(rel, files.names):
            yield ref, parts, files
        for entry in entries:
            if entry.is_dir:
                yield from self._walk(entry.folder, f"{rel}{entry.name}/")

    @staticmethod
    def _entries(folder: Path | Location) -> list[_Entry]:
        """A folder's visible entries sorted by name: a local folder (a symlinked folder counts as a
        file, so it is never entered) or a bucket prefix."""
        if isinstance(folder, Location):
            return [_Entry(e.base_name, folder.join(e.base_name).uri, e.type == uri.FileType.Directory,
                           folder.join(e.base_name))
                    for e in uri.list_dir(folder) if not e.base_name.startswith(".")]
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc
        return [_Entry(e.name, e.path, e.is_dir(follow_symlinks=False), Path(e.path)) for e in entries]
