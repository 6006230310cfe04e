"""Pick the right Source for what the user pointed at: a folder, a manifest, shards, or a glob of shards
(T2I images: `open_source`; edit pairs and sequences: `open_edit_source`).

One entry point so the CLI and the pipelines accept the same input specs and give the same advice
when a spec cannot be used (a URL, a path that does not exist, a file of an unknown kind).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from braceexpand import braceexpand

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS
from got_data.ingest.edit_items import EditItem
from got_data.ingest.edit_sources import (
    EditFolderSource,
    EditManifestSource,
    EditWebDatasetSource,
    MultiTurnManifestSource,
)
from got_data.ingest.folder import FolderSource
from got_data.ingest.items import URL_ADVICE, InputItem, Source, is_image_name, is_url
from got_data.ingest.manifest import DEFAULT_CAPTION_COLUMN, JSONL_SUFFIXES, PARQUET_SUFFIXES, ManifestSource
from got_data.ingest.webdataset import WebDatasetSource
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy
from got_data.uri import is_remote

SHARD_SUFFIX = ".tar"
_GLOB_CHARS = frozenset("*?[")


def open_source(
    spec: str | os.PathLike[str],
    image_column: str = "image",
    caption_column: str | None = DEFAULT_CAPTION_COLUMN,
    dataset: str | None = None,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    member_policy: MemberPolicy = DEFAULT_POLICY,
    allow_outside: Sequence[str | os.PathLike[str]] = (),
) -> Source[InputItem]:
    """The Source for `spec` (`member_policy`: what a shard's tar members may be, see tar_policy.py).
    Files are read only inside the input (the folder, the manifest's folder, the shards' folder) or a
    folder in `allow_outside` (see got_data/ingest/paths.py).

    - a bucket prefix of images (`s3://bucket/images`, through `got_data/uri.py`) -> FolderSource
    - a folder of images (searched recursively; `.txt` sidecars are captions) -> FolderSource
    - a `.jsonl`/`.ndjson`/`.parquet` manifest -> ManifestSource (image/caption columns as given)
    - a `.tar` shard, a folder whose top level holds `.tar` shards and no images, a glob
      (`shards/*.tar`) or a brace range (`shards/{00000..00009}.tar`) -> WebDatasetSource
    """
    text = os.fspath(spec)
    if is_remote(text):  # a bucket prefix of images (manifests and shards in a bucket: not yet)
        return FolderSource(text, dataset=dataset, max_caption_chars=max_caption_chars)
    if is_url(text):
        raise InputError(f"{text} is a URL. {URL_ADVICE}, then pass the local folder or shards.")
    if not os.path.exists(text) and ("{" in text or any(c in text for c in _GLOB_CHARS)):
        return WebDatasetSource(_expand_shard_pattern(text), dataset=dataset, max_caption_chars=max_caption_chars,
                                member_policy=member_policy, allow_outside=allow_outside)
    path = Path(text)
    if not path.exists():
        raise InputError(
            f"input {text} does not exist; pass an image folder, a .jsonl/.parquet manifest or .tar shards"
        )
    if path.is_dir():
        shards = _top_level_shards(path)
        if shards:
            return WebDatasetSource(shards, dataset=dataset, max_caption_chars=max_caption_chars,
                                    member_policy=member_policy, allow_outside=allow_outside)
        return FolderSource(path, dataset=dataset, max_caption_chars=max_caption_chars, allow_outside=allow_outside)
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES + PARQUET_SUFFIXES:
        return ManifestSource(
            path, image_column=image_column, caption_column=caption_column, dataset=dataset,
            max_caption_chars=max_caption_chars, allow_outside=allow_outside,
        )
    if suffix == SHARD_SUFFIX:
        return WebDatasetSource([path], dataset=dataset, max_caption_chars=max_caption_chars,
                                member_policy=member_policy, allow_outside=allow_outside)
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
    names = [e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    if any(is_image_name(n) for n in names):
        return []
    return [folder / n for n in sorted(names) if n.lower().endswith(SHARD_SUFFIX)]


def open_edit_source(
    spec: str | os.PathLike[str],
    multiturn: bool = False,
    source_column: str = "source",
    target_column: str = "target",
    instruction_column: str = "instruction",
    edit_type_column: str | None = "edit_type",
    turns_column: str = "turns",
    dataset: str | None = None,
    max_instruction_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    member_policy: MemberPolicy = DEFAULT_POLICY,
    allow_outside: Sequence[str | os.PathLike[str]] = (),
) -> Source[EditItem]:
    """The Source of edit inputs for `spec` (`member_policy`: what a shard's tar members may be; files
    confined as in `open_source`).

    Single-turn: a `.jsonl`/`.parquet` manifest -> EditManifestSource; a folder of `KEY/` pair folders
    -> EditFolderSource; `.tar` shards (a file, a folder of them, a glob or brace range) ->
    EditWebDatasetSource. Multi-turn: a manifest -> MultiTurnManifestSource.
    """
    text = os.fspath(spec)
    if is_url(text):
        raise InputError(f"{text} is a URL. {URL_ADVICE}, then pass the local manifest, folder or shards.")
    path = Path(text)
    is_manifest = path.is_file() and path.suffix.lower() in JSONL_SUFFIXES + PARQUET_SUFFIXES
    if multiturn:
        if not is_manifest:
            raise InputError(
                f"input {text}: multi-turn edits are read from a manifest ({', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}) "
                "with a source column and a turns column"
            )
        return MultiTurnManifestSource(path, source_column=source_column, turns_column=turns_column, dataset=dataset,
                                       max_instruction_chars=max_instruction_chars, allow_outside=allow_outside)
    limits: dict[str, Any] = {"dataset": dataset, "max_instruction_chars": max_instruction_chars, "allow_outside": allow_outside}
    shard_limits: dict[str, Any] = {**limits, "member_policy": member_policy}
    if is_manifest:
        return EditManifestSource(path, source_column=source_column, target_column=target_column,
                                  instruction_column=instruction_column, edit_type_column=edit_type_column, **limits)
    if not path.exists() and ("{" in text or any(c in text for c in _GLOB_CHARS)):
        return EditWebDatasetSource(_expand_shard_pattern(text), **shard_limits)
    if not path.exists():
        raise InputError(f"input {text} does not exist; pass an edit manifest, a folder of pair folders or .tar shards")
    if path.is_dir():
        shards = _top_level_shards(path)
        if shards:
            return EditWebDatasetSource(shards, **shard_limits)
        return EditFolderSource(path, **limits)
    if path.suffix.lower() == SHARD_SUFFIX:
        return EditWebDatasetSource([path], **shard_limits)
    raise InputError(
        f"input {text}: unknown kind of file {path.suffix or '(no extension)'!r}; pass an edit manifest "
        f"({', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}), a folder of KEY/source.*, KEY/target.*, "
        f"KEY/instruction.txt folders, or {SHARD_SUFFIX} shards"
    )
