"""wids.json: the shard list webdataset's `wids.ShardListDataset` reads for random access.

wids maps a global sample number to (shard, position) from each shard's sample count, so the file
must list every finished shard with its `nsamples`; urls are relative to the file, so the folder can
move or be copied as a whole. Computed from the shards on disk, like the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from got_data import uri
from got_data.errors import ShardError
from got_data.shards.index import read_index
from got_data.shards.layout import (
    JSON_MEMBER,
    index_location_for,
    list_run_shard_locations,
    write_file_atomically,
)
from got_data.uri import Location

WIDS_INDEX_FILE = "wids.json"


def build_wids_index(out_dir: Path | str | Location, name: str = "got") -> dict[str, Any]:
    """The wids descriptor (`wids_version` 1) of a folder's (or bucket prefix's) finished shards."""
    folder = uri.location(out_dir)
    if not folder.remote and not uri.is_dir(folder):
        raise ShardError(f"{folder} is not a folder")
    shardlist = []
    for tar in list_run_shard_locations(folder, name):
        samples = sum(1 for row in read_index(index_location_for(tar)) if row.member == JSON_MEMBER)
        shardlist.append({"url": tar.name, "nsamples": samples, "filesize": uri.file_size(tar)})
    return {"wids_version": 1, "name": name, "shardlist": shardlist}


def write_wids_index(out_dir: Path | str | Location, name: str = "got") -> Path | Location:
    """Write `wids.json` beside the shards (whole or not at all) and return where it went."""
    descriptor = build_wids_index(out_dir, name)
    return write_file_atomically(uri.location(out_dir).join(WIDS_INDEX_FILE), json.dumps(descriptor, indent=2) + "\n")
