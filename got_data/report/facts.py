"""What the report shows, read from an annotate output folder: stats.json, manifest.json,
rejects.parquet, the shard indexes, and a seeded random sample of records.

Each source is optional where the folder can still say something without it (an older output has a
stats.json without distributions: they are then counted from the records), so the report also works
on outputs written before it existed.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from got_data import uri
from got_data.annotate.stats import DatasetStats
from got_data.annotate.stats_log import STATS_FILE
from got_data.errors import InputError, ShardError
from got_data.records import Provenance
from got_data.shards.layout import MANIFEST_FILE, index_location_for, list_shard_locations
from got_data.shards.reader import ShardSample
from got_data.shards.tar_stream import TarStream
from got_data.uri import Location, StorageError
from got_data.view import InvalidSample, shard_entries

REJECTS_FILE = "rejects.parquet"
SAMPLE_MIN_SHARDS = 4
SAMPLE_POOL = 4
Shard = TypeVar("Shard", Path, Location)


@dataclass
class RunFacts:
    out_dir: Location
    shards: list[Location]
    keys: int
    stats: dict[str, Any] | None
    manifest: dict[str, Any] | None
    rejects: Counter[tuple[str, str]]  # (stage, reason) -> count
    dataset: DatasetStats
    dataset_from: str  # "stats.json" or "the shards"
    sample: list[ShardSample | InvalidSample] = field(default_factory=list)
    provenance: Provenance | None = None

    @property
    def records(self) -> int:
        return self.keys

    @property
    def reject_count(self) -> int:
        return sum(self.rejects.values())

    def attempts(self) -> list[dict[str, Any]]:
        return list((self.stats or {}).get("attempts", []))


def _read_json(path: Location) -> dict[str, Any] | None:
    if not uri.is_file(path):
        return None
    try:
        data = json.loads(uri.read_text(path))
    except (OSError, StorageError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else None


def _read_column(path: Location, columns: list[str]) -> pa.Table:
    """Columns of a parquet file on any file system (through the URI layer)."""
    with uri.open_input(path) as file:
        return pq.read_table(file, columns=columns)


def _read_rejects(path: Location) -> Counter[tuple[str, str]]:
    if not uri.is_file(path):
        return Counter()
    try:
        rows = _read_column(path, ["stage", "reason"]).to_pylist()
    except (OSError, StorageError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return Counter((row["stage"], row["reason"]) for row in rows)


def shard_keys(tar: Path | Location) -> list[str]:
    """The sample keys of a shard, from its parquet index (the tar is streamed when the index is unusable)."""
    try:
        keys = _read_column(index_location_for(uri.location(tar)), ["key"]).column("key").to_pylist()
        return list(dict.fromkeys(keys))
    except (OSError, StorageError, KeyError, pa.ArrowException):
        try:
            return [raw.key for raw in TarStream(tar).samples()]
        except ShardError:
            return []  # an unreadable tar: `got-data validate` says what is wrong with it


def sample_keys(keys_by_shard: dict[Shard, list[str]], size: int, seed: int) -> dict[Shard, set[str]]:
    """A seeded random sample of `size` keys (not the first N), grouped by shard.

    Reading a sample means streaming the tars that hold it, so the keys are drawn from a seeded random
    choice of shards: at least SAMPLE_MIN_SHARDS of them, and enough to hold SAMPLE_POOL times `size`
    keys. A small run is sampled over all its shards; a large one reads a few shards, not all."""
    rng = random.Random(seed)
    shards = sorted(keys_by_shard, key=str)
    rng.shuffle(shards)
    pool: list[tuple[Shard, str]] = []
    for n, tar in enumerate(shards):
        if n >= SAMPLE_MIN_SHARDS and len(pool) >= SAMPLE_POOL * size:
            break
        pool += [(tar, key) for key in keys_by_shard[tar]]
    grouped: dict[Shard, set[str]] = {}
    for tar, key in rng.sample(pool, min(size, len(pool))):
        grouped.setdefault(tar, set()).add(key)
    return grouped


def require_output_folder(out_dir: Path | str | Location) -> Location:
    """The folder (or bucket prefix) `out_dir` as a Location; InputError unless it is one (what an
    annotate run's --out is)."""
    folder = uri.location(out_dir)
    if not uri.is_dir(folder):
        raise InputError(f"{folder} is not a folder: give the --out folder of an annotate run")
    return folder


def gather(out_dir: Path | str | Location, sample_size: int, seed: int) -> RunFacts:
    """Everything the report shows about `out_dir` (a folder or a bucket prefix); InputError when it is
    not an annotate output."""
    folder = require_output_folder(out_dir)
    shards = list_shard_locations(folder)
    stats = _read_json(folder.join(STATS_FILE))
    manifest = _read_json(folder.join(MANIFEST_FILE))
    if not shards and stats is None and not uri.exists(folder.join(REJECTS_FILE)):
        raise InputError(f"{folder} holds no shard, stats.json or rejects.parquet: not an annotate output folder")
    keys_by_shard = {tar: shard_keys(tar) for tar in shards}
    facts = RunFacts(out_dir=folder, shards=shards, keys=sum(len(k) for k in keys_by_shard.values()), stats=stats,
                     manifest=manifest, rejects=_read_rejects(folder.join(REJECTS_FILE)), dataset=DatasetStats(),
                     dataset_from="stats.json")
    if stats is not None and isinstance(stats.get("dataset"), dict):
        facts.dataset = DatasetStats.from_dict(stats["dataset"])
    else:
        facts.dataset_from = "the shards"
        for entry in shard_entries(shards):
            if isinstance(entry, ShardSample):
                facts.dataset.add_record(entry.record)
    for tar, keys in sample_keys(keys_by_shard, sample_size, seed).items():
        facts.sample += list(shard_entries([tar], keys))
    facts.provenance = next((e.record.provenance for e in facts.sample if isinstance(e, ShardSample)), None)
    return facts
