"""A folder of images, searched recursively, each with an optional sidecar `.txt` caption.

Only one directory's listing is held at a time, so memory stays flat however large the tree is.
Order is deterministic: within a folder its images by name, then its sub-folders by name. Hidden
entries (names starting with ".", e.g. macOS `._photo.jpg` resource forks) are skipped, and
symlinked folders are not followed, so a link cannot make the walk loop. Every entry named like an
image is an input, whatever it is: a symlink out of the folder, a FIFO or a dangling link becomes an
item with a problem (InputRoots decides), and so does an image whose sidecar caption is refused.

The folder may be a bucket prefix (`s3://bucket/images`): the same walk over the URI layer's
listings. A store has no links, so every object listed lies under the prefix (the prefix is the
input's root); images are read where they are decoded, captions through the same layer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from got_data import uri
from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, Caption, caption_from_bytes, read_caption_file
from got_data.ingest.items import (
    ImageSource,
    InputItem,
    ObjectImage,
    PathImage,
    Source,
    dataset_name,
    is_image_name,
    problem_item,
)
from got_data.ingest.paths import InputRoots, PathRefused
from got_data.uri import Location


@dataclass(frozen=True)
class _Entry:
    name: str
    path: str  # a local path or an object's URI
    is_dir: bool
    folder: Path | Location  # where to list it, when it is a folder


class FolderSource(Source[InputItem]):
    """Every image under `root`; `photo.jpg`'s caption is `photo.txt` next to it, when present.

    Files are read only under `root` or a folder in `allow_outside` (symlinks resolved).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        dataset: str | None = None,
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.bucket = uri.location(root) if uri.is_remote(root) else None
        self.roots: InputRoots | None = None
        if self.bucket is not None:
            self.root: Path | str = self.bucket.uri
            if not uri.list_dir(self.bucket):
                raise InputError(f"{self.root} holds no objects; pass the prefix of an image folder")
        else:
            self.root = Path(root)
            if not self.root.is_dir():
                raise InputError(f"{self.root} is not a folder")
            self.roots = InputRoots.under(self.root, allow_outside)
        self.dataset = dataset or dataset_name(self.root)
        self.max_caption_chars = max_caption_chars

    def __iter__(self) -> Iterator[InputItem]:
        for rel_path, path, sidecar in self._walk():
            try:
                image, caption, caption_error = self._open(rel_path, path, sidecar)
            except PathRefused as exc:
                yield problem_item(self.dataset, rel_path, exc.reason, exc.detail)
                continue
            yield InputItem(
                input_ref=rel_path, dataset=self.dataset, image=image, caption=caption, caption_error=caption_error,
            )

    def count(self) -> int:
        """Walks the tree without reading any file (one directory listing per folder)."""
        return sum(1 for _ in self._walk())

    def _walk(self) -> Iterator[tuple[str, str, tuple[str, str] | None]]:
        return self._images(self.bucket or Path(self.root), "")

    def _open(self, rel_path: str, path: str, sidecar: tuple[str, str] | None) -> tuple[ImageSource, str | None, str | None]:
        """The image handle and caption of one input; PathRefused when a local path may not be read."""
        if self.roots is None:
            return ObjectImage(path), *(self._object_caption(sidecar[1]) if sidecar else (None, None))
        image = PathImage(self.roots.confine(path, shown=rel_path), ref=rel_path)
        if sidecar is None:
            return image, None, None
        real_caption = self.roots.confine(sidecar[1], shown=f"its caption {sidecar[0]}")
        return image, *read_caption_file(real_caption, self.max_caption_chars)

    def _object_caption(self, caption_uri: str) -> Caption:
        limit = 4 * self.max_caption_chars + 4  # as read_caption_file: no more than the kept characters need
        try:
            data = uri.read_bytes(caption_uri, limit=limit)
            return caption_from_bytes(data, self.max_caption_chars, total_bytes=uri.file_size(caption_uri))
        except (OSError, uri.StorageError) as exc:
            return None, f"unreadable: {exc}"

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

    def _images(self, folder: Path | Location, rel: str) -> Iterator[tuple[str, str, tuple[str, str] | None]]:
        """(relative path, path, sidecar caption's (relative path, path) or None) per image, depth first."""
        sidecars: dict[str, _Entry] = {}
        images: list[_Entry] = []
        subfolders: list[_Entry] = []
        for entry in self._entries(folder):
            if entry.is_dir:
                subfolders.append(entry)
            else:  # files, and links, FIFOs, devices by their names: the roots decide what is read
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() == ".txt":
                    sidecars.setdefault(stem, entry)
                elif is_image_name(entry.name):
                    images.append(entry)
        for entry in images:
            sidecar = sidecars.get(os.path.splitext(entry.name)[0])
            yield rel + entry.name, entry.path, (rel + sidecar.name, sidecar.path) if sidecar else None
        for entry in subfolders:
            yield from self._images(entry.folder, f"{rel}{entry.name}/")
