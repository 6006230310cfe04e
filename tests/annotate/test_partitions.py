"""How `split` divides a real source between annotators: whole input tars where it can, else round robin."""

from __future__ import annotations

from pathlib import Path

from got_data.annotate.partitions import Partition, split
from got_data.ingest import open_source
from tests.ingest.conftest import write_shard

SIZES = (3, 1, 2)


def _tars(folder: Path) -> Path:
    for n, size in enumerate(SIZES):
        write_shard(folder / f"{n:05d}.tar", [(f"k{n}-{i}", {"txt": b"a caption"}) for i in range(size)])
    return folder


def _refs(partition: Partition, source) -> list[str]:
    return [item.input_ref for n, item in enumerate(partition.listing(source)) if partition.takes(n)]


def test_shard_input_is_split_by_whole_tars(tmp_path):
    source = open_source(str(_tars(tmp_path / "tars")))
    parts = split(source, 2)
    assert [p.shards for p in parts] == [(0, 2), (1,)]
    assert _refs(parts[0], source) == ["00000.tar#k0-0", "00000.tar#k0-1", "00000.tar#k0-2",
                                       "00002.tar#k2-0", "00002.tar#k2-1"]
    assert _refs(parts[1], source) == ["00001.tar#k1-0"]  # references as the whole source names them
    assert sorted(_refs(parts[0], source) + _refs(parts[1], source)) == sorted(i.input_ref for i in source)
    assert parts[0].share_of(6) is None and [s.name for s in source.shards] == ["00000.tar", "00001.tar", "00002.tar"]


def test_a_limit_or_too_few_tars_falls_back_to_round_robin(tmp_path):
    source = open_source(str(_tars(tmp_path / "tars")))
    every = [item.input_ref for item in source]
    for parts in (split(source, 2, limit=4), split(source, 4)):
        assert all(not p.by_shard for p in parts)
        assert sorted(ref for p in parts for ref in _refs(p, source)) == sorted(every)
    assert _refs(split(source, 2, limit=4)[1], source) == every[1::2]

