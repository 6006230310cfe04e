"""Pick the right Source for what the user pointed at: a folder, a manifest, shards, or a glob of shards.

One entry point so the CLI and the pipelines accept the same input specs and give the same advice
when a spec cannot be used (a URL, a path that does not exist, a file of an unknown kind).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from braceexpand import braceexpand

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS
from got_data.ingest.folder import FolderSource
from got_data.ingest.items import URL_ADVICE, Source, is_image_name, is_url
from got_data.ingest.manifest import DEFAULT_CAPTION_COLUMN, JSONL_SUFFIXES, PARQUET_SUFFIXES, ManifestSource
from got_data.ingest.webdataset import WebDatasetSource

SHARD_SUFFIX = ".tar"
_GLOB_CHARS = frozenset("*?[")


def open_source(
    spec: str | os.PathLike[str],
    image_column: str = "image",
    caption_column: str | None = DEFAULT_CAPTION_COLUMN,
    dataset: str | None = None,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
) -> Source:
    """The Source for `spec`.

    - a folder of images (searched recursively; `.txt` sidecars are captions) -> FolderSource
    - a `.jsonl`/`.ndjson`/`.parquet` manifest -> ManifestSource (image/caption columns as given)
    - a `.tar` shard, a folder whose top level holds `.tar` shards and no images, a glob
      (`shards/*.tar`) or a brace range (`shards/{00000..00009}.tar`) -> WebDatasetSource
    """
    text = os.fspath(spec)
    if is_url(text):
        raise InputError(f"{text} is a URL. {URL_ADVICE}, then pass the local folder or shards.")
    if not os.path.exists(text) and ("{" in text or any(c in text for c in _GLOB_CHARS)):
        return WebDatasetSource(_expand_shard_pattern(text), dataset=dataset, max_caption_chars=max_caption_chars)
    path = Path(text)
    if not path.exists():
        raise InputError(
            f"input {text} does not exist; pass an image folder, a .jsonl/.parquet manifest or .tar shards"
        )
    if path.is_dir():
        shards = _top_level_shards(path)
        if shards:
            return WebDatasetSource(shards, dataset=dataset, max_caption_chars=max_caption_chars)
        return FolderSource(path, dataset=dataset, max_caption_chars=max_caption_chars)
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES + PARQUET_SUFFIXES:
        return ManifestSource(
            path, image_column=image_column, caption_column=caption_column, dataset=dataset,
            max_caption_chars=max_caption_chars,
        )
    if suffix == SHARD_SUFFIX:
        return WebDatasetSource([path], dataset=dataset, max_caption_chars=max_caption_chars)
    if is_image_name(path.name):
        raise InputError(f"{text} is a single image; pass the folder that holds it")
    raise InputError(
        f"input {text}: unknown kind of file {suffix or '(no extension)'!r}; pass an image folder, "
        f"a manifest ({', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}) or {SHARD_SUFFIX} shards"
    )


def _expand_shard_pattern(pattern: str) -> list[str]:
    matches = sorted({match for part in braceexpand(pattern) for match in glob.glob(part)})
    if not matches:
        raise InputError(f"no files match {pattern}")
    not_shards = [m for m in matches if not m.endswith(SHARD_SUFFIX)]
    if not_shards:
        raise InputError(f"{pattern} matches files that are not {SHARD_SUFFIX} shards, e.g. {not_shards[0]}")
    return matches


def _top_level_shards(folder: Path) -> list[Path]:
    """The folder's `.tar` files, if it is a folder of shards (tars and no images at its top level)."""
    names = [e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")]
    if any(is_image_name(n) for n in names):
        return []
    return [folder / n for n in sorted(names) if n.lower().endswith(SHARD_SUFFIX)]
