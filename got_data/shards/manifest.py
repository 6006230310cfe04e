"""manifest.json: what a shard folder holds, computed from the finished shards on disk.

Computing it from disk (tar bytes for the sha256, the parquet indexes for counts) rather than from a
writer's memory is what keeps it right after a resumed or repeated run.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import got_data
from got_data import uri
from got_data.errors import ShardError
from got_data.records import SCHEMA_VERSION
from got_data.shards.index import read_index
from got_data.shards.layout import (
    JSON_MEMBER,
    MANIFEST_FILE,
    index_location_for,
    list_run_shard_locations,
    write_file_atomically,
)
from got_data.uri import Location, StorageError

_CHUNK = 1 << 20


def file_sha256(path: Path | Location) -> str:
    """sha256 of a file or object, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with uri.open_input(path) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(out_dir: Path | str | Location, name: str = "got") -> dict[str, Any]:
    """The manifest of the finished shards of the run `name` in a folder or bucket prefix, as a dict:
    `{name}-NNNNNN.tar` and its annotators' `{name}-pNNN-NNNNNN.tar` (`layout.in_run`)."""
    folder = uri.location(out_dir)
    if not folder.remote and not uri.is_dir(folder):
        raise ShardError(f"{folder} is not a folder")
    shards = []
    kinds: Counter[str] = Counter()
    for tar in list_run_shard_locations(folder, name):
        rows = [row for row in read_index(index_location_for(tar)) if row.member == JSON_MEMBER]
        kinds.update(row.kind for row in rows)
        shards.append({"file": tar.name, "samples": len(rows), "sha256": file_sha256(tar), "size": uri.file_size(tar)})
    return {
        "name": name,
        "schema_version": SCHEMA_VERSION,
        "got_data_version": got_data.__version__,
        "total_samples": sum(s["samples"] for s in shards),
        "counts_by_kind": dict(sorted(kinds.items())),
        "shards": shards,
    }


def write_manifest(out_dir: Path | str | Location, name: str = "got") -> Path | Location:
    """Write `manifest.json` for a folder's (or prefix's) finished shards, whole or not at all; returns
    where it went."""
    manifest = build_manifest(out_dir, name)
    return write_file_atomically(uri.location(out_dir).join(MANIFEST_FILE),
                                 json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path | Location) -> dict[str, Any]:
    """Load a manifest.json (a file or an object); raises ShardError when it is unreadable or lacks its fields."""
    try:
        data = json.loads(uri.read_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, StorageError) as exc:
        raise ShardError(f"cannot read manifest {path}: {exc}") from exc
    required = ("schema_version", "total_samples", "counts_by_kind", "shards")
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise ShardError(f"manifest {path} lacks one of {list(required)}")
    return data
