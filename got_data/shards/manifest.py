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
from got_data.errors import ShardError
from got_data.records import SCHEMA_VERSION
from got_data.shards.index import read_index
from got_data.shards.layout import JSON_MEMBER, MANIFEST_FILE, index_path_for, list_shards, write_file_atomically

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(out_dir: Path | str, name: str = "got") -> dict[str, Any]:
    """The manifest of the finished `{name}-*.tar` shards in a folder, as a dict."""
    folder = Path(out_dir)
    if not folder.is_dir():
        raise ShardError(f"{folder} is not a folder")
    shards = []
    kinds: Counter[str] = Counter()
    for tar in list_shards(folder, name):
        rows = [row for row in read_index(index_path_for(tar)) if row.member == JSON_MEMBER]
        kinds.update(row.kind for row in rows)
        shards.append({"file": tar.name, "samples": len(rows), "sha256": file_sha256(tar), "size": tar.stat().st_size})
    return {
        "name": name,
        "schema_version": SCHEMA_VERSION,
        "got_data_version": got_data.__version__,
        "total_samples": sum(s["samples"] for s in shards),
        "counts_by_kind": dict(sorted(kinds.items())),
        "shards": shards,
    }


def write_manifest(out_dir: Path | str, name: str = "got") -> Path:
    """Write `manifest.json` for a folder's finished shards (atomically) and return its path."""
    manifest = build_manifest(out_dir, name)
    return write_file_atomically(Path(out_dir) / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path) -> dict[str, Any]:
    """Load a manifest.json; raises ShardError when it is unreadable or lacks its fields."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"cannot read manifest {path}: {exc}") from exc
    required = ("schema_version", "total_samples", "counts_by_kind", "shards")
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise ShardError(f"manifest {path} lacks one of {list(required)}")
    return data
