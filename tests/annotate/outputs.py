"""Test support: read back where every input of a pipeline run ended (shard sample or reject row)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from got_data.shards.layout import list_shards
from got_data.shards.reader import iter_samples


def outcome(out: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """input_ref -> key for shard samples; input_ref -> (stage, reason) for rejects. Fails on duplicates."""
    samples: dict[str, str] = {}
    if list_shards(out):
        for sample in iter_samples(out):
            ref = sample.record.source.input_ref
            assert ref not in samples, f"{ref} written twice"
            samples[ref] = sample.key
    rejects = {}
    for row in pq.read_table(out / "rejects.parquet").to_pylist():
        assert row["input_ref"] not in rejects and row["input_ref"] not in samples, f"{row['input_ref']} twice"
        rejects[row["input_ref"]] = (row["stage"], row["reason"])
    return samples, rejects
