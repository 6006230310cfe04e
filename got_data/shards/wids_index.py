"""wids.json: the shard list webdataset's `wids.ShardListDataset` reads for random access.

wids maps a global sample number to (shard, position) from each shard's sample count, so the file
must list every finished shard with its `nsamples`; urls are relative to the file, so the folder can
move or be copied as a whole. Computed from the shards on disk, like the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from got_data.errors import ShardError
from got_data.shards.index import read_index
from got_data.shards.layout import JSON_MEMBER, index_path_for, list_shards, write_file_atomically

WIDS_INDEX_FILE = "wids.json"


def build_wids_index(out_dir: Path | str, name: str = "got") -> dict[str, Any]:
    """The wids descriptor (`wids_version` 1) of a folder's finished `{name}-*.tar` shards."""
    folder = Path(out_dir)
    if not folder.is_dir():
        raise ShardError(f"{folder} is not a folder")
    shardlist = []
    for tar in list_shards(folder, name):
        samples = sum(1 for row in read_index(index_path_for(tar)) if row.member == JSON_MEMBER)
        shardlist.append({"url": tar.name, "nsamples": samples, "filesize": tar.stat().st_size})
    return {"wids_version": 1, "name": name, "shardlist": shardlist}


def write_wids_index(out_dir: Path | str, name: str = "got") -> Path:
    """Write `wids.json` beside the shards (atomically) and return its path."""
    descriptor = build_wids_index(out_dir, name)
    return write_file_atomically(Path(out_dir) / WIDS_INDEX_FILE, json.dumps(descriptor, indent=2) + "\n")
