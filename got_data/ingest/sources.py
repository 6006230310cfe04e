"""Pick the Source for what the user pointed at: a folder, a manifest, shards, or a glob of shards,
for any record kind (`INPUT_KINDS`: what a file, row or sample of each format becomes).

One entry point so the CLI and the pipelines accept the same input specs and give the same advice
when a spec cannot be used (a URL, a path that does not exist, a file of an unknown kind, a format
the record kind is not read from). A new format is one reader (a Source and its `*Inputs`
interface) plus a line here; a new record kind is one `InputKind` implementing the formats it reads.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from braceexpand import braceexpand

from got_data import uri
from got_data.errors import InputError
from got_data.ingest.edit_inputs import EditInputs, MultiTurnInputs
from got_data.ingest.folder import FolderInputs, FolderSource
from got_data.ingest.items import URL_ADVICE, InputKind, Source, is_image_name, is_url
from got_data.ingest.manifest import JSONL_SUFFIXES, PARQUET_SUFFIXES, ManifestSource, RowInputs
from got_data.ingest.t2i_inputs import T2IInputs
from got_data.ingest.webdataset import SampleInputs, WebDatasetSource
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy
from got_data.uri import FileType, is_remote

SHARD_SUFFIX = ".tar"
_GLOB_CHARS = frozenset("*?[")
# Each record kind's inputs with their default options, by record kind (records.RECORD_KINDS).
INPUT_KINDS: dict[str, type[InputKind[Any]]] = {"t2i": T2IInputs, "edit": EditInputs, "multiturn": MultiTurnInputs}
# What a kind must implement to be read from each format, and the format in messages.
_FORMATS: dict[str, tuple[type[InputKind[Any]], str]] = {
    "folder": (FolderInputs, "a folder"), "manifest": (RowInputs, "a manifest"), "shards": (SampleInputs, "shards"),
}


def open_source(
    spec: str | os.PathLike[str],
    items: InputKind[Any] | None = None,
    dataset: str | None = None,
    member_policy: MemberPolicy = DEFAULT_POLICY,
    allow_outside: Sequence[str | os.PathLike[str]] = (),
) -> Source[Any]:
    """The Source for `spec`, yielding what `items` (default: T2I inputs) makes of each input
    (`member_policy`: what a shard's tar members may be, see tar_policy.py). Files are read only
    inside the input (the folder, the manifest's folder, the shards' folder) or a folder in
    `allow_outside` (see got_data/ingest/paths.py).

    - a folder or a bucket prefix (searched recursively) -> FolderSource
    - a `.jsonl`/`.ndjson`/`.parquet` manifest -> ManifestSource
    - a `.tar` shard, a folder whose top level holds `.tar` shards and no images, a glob
      (`shards/*.tar`) or a brace range (`shards/{00000..00009}.tar`) -> WebDatasetSource
    Each may be local or in a store (`s3://bucket/...`, through `got_data/uri.py`).
    """
    kind = items if items is not None else T2IInputs()
    text = os.fspath(spec)
    remote = is_remote(text)
    if is_url(text) and not remote:
        raise InputError(f"{text} is a URL. {URL_ADVICE}, then pass the local input ({kind.accepted}).")
    shard_options: dict[str, Any] = {"dataset": dataset, "member_policy": member_policy, "allow_outside": allow_outside}
    found = _file_type(text, remote)
    if found == FileType.NotFound and ("{" in text or any(c in text for c in _GLOB_CHARS)):
        return WebDatasetSource(_expand_shard_pattern(text, remote), _supporting(kind, "shards", text), **shard_options)
    if found == FileType.NotFound:
        raise InputError(f"input {text} does not exist; pass {kind.accepted}")
    if found == FileType.Directory:
        shards = _top_level_shards(text, remote)
        if shards:
            return WebDatasetSource(shards, _supporting(kind, "shards", text), **shard_options)
        return FolderSource(text, _supporting(kind, "folder", text), dataset=dataset, allow_outside=allow_outside)
    name = uri.location(text).name
    suffix = os.path.splitext(name)[1].lower()
    if suffix in JSONL_SUFFIXES + PARQUET_SUFFIXES:
        return ManifestSource(text, _supporting(kind, "manifest", text), dataset=dataset, allow_outside=allow_outside)
    if suffix == SHARD_SUFFIX:
        return WebDatasetSource([text], _supporting(kind, "shards", text), **shard_options)
    if is_image_name(name):
        raise InputError(f"{text} is a single image; pass the folder that holds it")
    raise InputError(f"input {text}: unknown kind of file {suffix or '(no extension)'!r}; pass {kind.accepted}")


def _file_type(text: str, remote: bool) -> FileType:
    """Directory, NotFound, or File for anything else that exists (a FIFO too: the reader refuses it)."""
    if remote:
        return uri.file_type(text)
    path = Path(text)
    return FileType.Directory if path.is_dir() else FileType.File if path.exists() else FileType.NotFound


def _supporting(kind: InputKind[Any], format_name: str, text: str) -> Any:
    """`kind` when it is read from this format; else one InputError saying what it is read from."""
    interface, shown = _FORMATS[format_name]
    if not isinstance(kind, interface):
        raise InputError(f"input {text}: {kind.name} are read from {kind.accepted}, not from {shown}")
    return kind


def _expand_shard_pattern(pattern: str, remote: bool) -> list[str]:
    matches = sorted({match for part in braceexpand(pattern) for match in _matching(part, remote)})
    if not matches:
        raise InputError(f"no files match {pattern}")
    not_shards = [m for m in matches if not m.endswith(SHARD_SUFFIX)]
    if not_shards:
        raise InputError(f"{pattern} matches files that are not {SHARD_SUFFIX} shards, e.g. {not_shards[0]}")
    return matches


def _matching(pattern: str, remote: bool) -> list[str]:
    """What a glob names: local files, or objects of one prefix (patterns only in the last part)."""
    if not remote:
        return glob.glob(pattern)
    parent, _, last = pattern.rpartition("/")
    if any(c in parent for c in _GLOB_CHARS):
        raise InputError(f"{pattern}: in a bucket, a pattern may use {''.join(sorted(_GLOB_CHARS))} in its last part only")
    return [f"{parent}/{e.base_name}" for e in uri.list_dir(parent)
            if e.type == FileType.File and fnmatch.fnmatchcase(e.base_name, last)]


def _top_level_shards(folder: str, remote: bool) -> list[str]:
    """The folder's `.tar` files, if it is a folder of shards (tars and no images at its top level)."""
    if remote:
        names = [e.base_name for e in uri.list_dir(folder) if e.type == FileType.File]
    else:
        names = [e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)]
    names = [n for n in names if not n.startswith(".")]
    if any(is_image_name(n) for n in names):
        return []
    return [f"{folder.rstrip('/')}/{n}" if remote else os.path.join(folder, n)
            for n in sorted(names) if n.lower().endswith(SHARD_SUFFIX)]
