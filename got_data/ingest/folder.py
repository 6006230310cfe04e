"""A folder of images, searched recursively, each with an optional sidecar `.txt` caption.

Only one directory's listing is held at a time, so memory stays flat however large the tree is.
Order is deterministic: within a folder its images by name, then its sub-folders by name. Hidden
entries (names starting with ".", e.g. macOS `._photo.jpg` resource forks) are skipped, and
symlinked folders are not followed, so a link cannot make the walk loop. Every entry named like an
image is an input, whatever it is: a symlink out of the folder, a FIFO or a dangling link becomes an
item with a problem (InputRoots decides), and so does an image whose sidecar caption is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, read_caption_file
from got_data.ingest.items import InputItem, PathImage, Source, dataset_name, is_image_name, problem_item
from got_data.ingest.paths import InputRoots, PathRefused


class FolderSource(Source):
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
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root} is not a folder")
        self.roots = InputRoots.under(self.root, allow_outside)
        self.dataset = dataset or dataset_name(self.root)
        self.max_caption_chars = max_caption_chars

    def __iter__(self) -> Iterator[InputItem]:
        for rel_path, path, sidecar in self._images(self.root, ""):
            try:
                image = PathImage(self.roots.confine(path, shown=rel_path), ref=rel_path)
                caption, caption_error = (None, None)
                if sidecar is not None:
                    real_caption = self.roots.confine(sidecar[1], shown=f"its caption {sidecar[0]}")
                    caption, caption_error = read_caption_file(real_caption, self.max_caption_chars)
            except PathRefused as exc:
                yield problem_item(self.dataset, rel_path, exc.reason, exc.detail)
                continue
            yield InputItem(
                input_ref=rel_path, dataset=self.dataset, image=image, caption=caption, caption_error=caption_error,
            )

    def count(self) -> int:
        """Walks the tree without reading any file (one directory listing per folder)."""
        return sum(1 for _ in self._images(self.root, ""))

    def _images(self, folder: Path, rel: str) -> Iterator[tuple[str, str, tuple[str, str] | None]]:
        """(relative path, path, sidecar caption's (relative path, path) or None) per image, depth first."""
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc
        sidecars: dict[str, os.DirEntry[str]] = {}
        images: list[os.DirEntry[str]] = []
        subfolders: list[os.DirEntry[str]] = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
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
            yield from self._images(Path(entry.path), f"{rel}{entry.name}/")
