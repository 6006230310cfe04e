"""The committed sample shards are exactly what the generator makes today (drift is caught here)."""

from __future__ import annotations

import pyarrow.parquet as pq


def test_committed_shards_match_a_fresh_generation(shard_generator, shards_dir, tmp_path):
    fresh = shard_generator.generate(tmp_path / "shards")
    committed = sorted(p.relative_to(shards_dir) for p in shards_dir.rglob("*") if p.is_file())
    regenerated = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert committed == regenerated
    hint = "rerun `python tests/data/make_test_shards.py` and commit the result"
    for rel in committed:
        old, new = shards_dir / rel, fresh / rel
        if rel.suffix == ".parquet":
            # parquet embeds the writing library's version: compare contents, not bytes
            assert pq.read_table(old).equals(pq.read_table(new)), f"{rel} drifted; {hint}"
        else:
            assert old.read_bytes() == new.read_bytes(), f"{rel} drifted; {hint}"


def test_sample_data_stays_small(shards_dir):
    total = sum(p.stat().st_size for p in shards_dir.rglob("*") if p.is_file())
    assert total < 512 * 1024
