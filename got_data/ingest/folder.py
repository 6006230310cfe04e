"""A folder of images, searched recursively, each with an optional sidecar `.txt` caption.

Only one directory's listing is held at a time, so memory stays flat however large the tree is.
Order is deterministic: within a folder its images by name, then its sub-folders by name. Hidden
entries (names starting with ".", e.g. macOS `._photo.jpg` resource forks) are skipped, and
symlinked folders are not followed, so a link cannot make the walk loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, read_caption_file
from got_data.ingest.items import InputItem, PathImage, Source, dataset_name, is_image_name


class FolderSource(Source):
    """Every image under `root`; `photo.jpg`'s caption is `photo.txt` next to it, when present."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        dataset: str | None = None,
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root} is not a folder")
        self.dataset = dataset or dataset_name(self.root)
        self.max_caption_chars = max_caption_chars

    def __iter__(self) -> Iterator[InputItem]:
        for rel_path, path, caption_path in self._images(self.root, ""):
            caption, caption_error = (None, None)
            if caption_path is not None:
                caption, caption_error = read_caption_file(caption_path, self.max_caption_chars)
            yield InputItem(
                input_ref=rel_path, dataset=self.dataset, image=PathImage(path), caption=caption,
                caption_error=caption_error,
            )

    def count(self) -> int:
        """Walks the tree without reading any file (one directory listing per folder)."""
        return sum(1 for _ in self._images(self.root, ""))

    def _images(self, folder: Path, rel: str) -> Iterator[tuple[str, str, str | None]]:
        """(relative path, path, sidecar caption path or None) for each image, depth first."""
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc
        sidecars: dict[str, str] = {}
        images: list[os.DirEntry[str]] = []
        subfolders: list[os.DirEntry[str]] = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry)
            elif entry.is_file():
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() == ".txt":
                    sidecars.setdefault(stem, entry.path)
                elif is_image_name(entry.name):
                    images.append(entry)
        for entry in images:
            yield rel + entry.name, entry.path, sidecars.get(os.path.splitext(entry.name)[0])
        for entry in subfolders:
            yield from self._images(Path(entry.path), f"{rel}{entry.name}/")
