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
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from got_data.annotate.stats import DatasetStats
from got_data.annotate.stats_log import STATS_FILE
from got_data.errors import InputError, ShardError
from got_data.records import Provenance
from got_data.shards.layout import MANIFEST_FILE, index_path_for, list_shards
from got_data.shards.reader import ShardSample
from got_data.shards.tar_stream import TarStream
from got_data.view import InvalidSample, shard_entries

REJECTS_FILE = "rejects.parquet"
SAMPLE_MIN_SHARDS = 4
SAMPLE_POOL = 4


@dataclass
class RunFacts:
    out_dir: Path
    shards: list[Path]
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


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else None


def _read_rejects(path: Path) -> Counter[tuple[str, str]]:
    if not path.is_file():
        return Counter()
    try:
        rows = pq.read_table(path, columns=["stage", "reason"]).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return Counter((row["stage"], row["reason"]) for row in rows)


def shard_keys(tar: Path) -> list[str]:
    """The sample keys of a shard, from its parquet index (the tar is streamed when the index is unusable)."""
    try:
        keys = pq.read_table(index_path_for(tar), columns=["key"]).column("key").to_pylist()
        return list(dict.fromkeys(keys))
    except (OSError, KeyError, pa.ArrowException):
        try:
            return [raw.key for raw in TarStream(tar).samples()]
        except ShardError:
            return []  # an unreadable tar: `got-data validate` says what is wrong with it


def sample_keys(keys_by_shard: dict[Path, list[str]], size: int, seed: int) -> dict[Path, set[str]]:
    """A seeded random sample of `size` keys (not the first N), grouped by shard.

    Reading a sample means streaming the tars that hold it, so the keys are drawn from a seeded random
    choice of shards: at least SAMPLE_MIN_SHARDS of them, and enough to hold SAMPLE_POOL times `size`
    keys. A small run is sampled over all its shards; a large one reads a few shards, not all."""
    rng = random.Random(seed)
    shards = sorted(keys_by_shard)
    rng.shuffle(shards)
    pool: list[tuple[Path, str]] = []
    for n, tar in enumerate(shards):
        if n >= SAMPLE_MIN_SHARDS and len(pool) >= SAMPLE_POOL * size:
            break
        pool += [(tar, key) for key in keys_by_shard[tar]]
    grouped: dict[Path, set[str]] = {}
    for tar, key in rng.sample(pool, min(size, len(pool))):
        grouped.setdefault(tar, set()).add(key)
    return grouped


def require_output_folder(out_dir: Path) -> None:
    """InputError unless `out_dir` is a folder (what an annotate run's --out is)."""
    if not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a folder: give the --out folder of an annotate run")


def gather(out_dir: Path, sample_size: int, seed: int) -> RunFacts:
    """Everything the report shows about `out_dir`; InputError when it is not an annotate output."""
    require_output_folder(out_dir)
    shards = list_shards(out_dir)
    stats = _read_json(out_dir / STATS_FILE)
    manifest = _read_json(out_dir / MANIFEST_FILE)
    if not shards and stats is None and not (out_dir / REJECTS_FILE).exists():
        raise InputError(f"{out_dir} holds no shard, stats.json or rejects.parquet: not an annotate output folder")
    keys_by_shard = {tar: shard_keys(tar) for tar in shards}
    facts = RunFacts(out_dir=out_dir, shards=shards, keys=sum(len(k) for k in keys_by_shard.values()), stats=stats,
                     manifest=manifest, rejects=_read_rejects(out_dir / REJECTS_FILE), dataset=DatasetStats(),
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
