"""How `split` divides a real source between annotators: whole input tars where it can, contiguous
ranges of a folder's or manifest's listing, else round robin."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from got_data.annotate.partitions import Partition, split
from got_data.ingest import open_source
from got_data.ingest.manifest import ManifestFile, _row_groups
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



def _folder(folder: Path) -> Path:
    """Seven inputs over nested folders: the walk's order is a folder's own files, then its sub-folders."""
    for rel in ("a.png", "b.png", "sub/c.png", "sub/d.png", "sub/deeper/e.png", "z/f.png", "z/g.png"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"not decoded here")
    (folder / "a.txt").write_text("a caption")
    return folder


def _jsonl(path: Path, rows: int) -> Path:
    lines = [json.dumps({"image": f"{i}.png", "caption": f"row {i}"}) for i in range(rows)]
    lines.insert(3, "")  # blank lines are not rows
    lines.insert(5, "{not json")  # an invalid row is still a row
    path.write_text("\n".join(lines) + "\n")
    return path


def _parquet(path: Path, rows: int, group: int) -> Path:
    table = pa.table({"image": [f"{i}.png" for i in range(rows)], "caption": [f"row {i}" for i in range(rows)]})
    pq.write_table(table, path, row_group_size=group)
    return path


@pytest.mark.parametrize("count", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("make", ["folder", "jsonl", "parquet"])
def test_folders_and_manifests_split_into_contiguous_ranges(tmp_path, make, count):
    path = {"folder": lambda: _folder(tmp_path / "images"), "jsonl": lambda: _jsonl(tmp_path / "m.jsonl", 9),
            "parquet": lambda: _parquet(tmp_path / "m.parquet", 9, group=2)}[make]()
    source = open_source(str(path))
    whole = [item.input_ref for item in source]
    parts = split(source, count)
    assert all(p.rows is not None and not p.by_shard for p in parts)
    shares = [_refs(p, source) for p in parts]
    assert [ref for share in shares for ref in share] == whole  # in order, each once, named as the whole names it
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1 and sizes == [p.share_of(None) for p in parts]
    assert [source.of_range(*p.rows).count() for p in parts] == sizes


def test_a_limit_is_a_range_of_the_whole_listing(tmp_path):
    source = open_source(str(_jsonl(tmp_path / "m.jsonl", 9)))
    parts = split(source, 2, limit=5)
    assert [p.rows for p in parts] == [(0, 2), (2, 5)]
    assert [ref for p in parts for ref in _refs(p, source)] == [f"m.jsonl#row={i}" for i in range(5)]
    assert [p.rows for p in split(source, 2, limit=50)] == [(0, 5), (5, 10)]  # 9 rows and the invalid one


def test_a_range_keeps_what_each_row_holds(tmp_path):
    source = open_source(str(_jsonl(tmp_path / "m.jsonl", 9)))
    rows = list(source.of_range(3, 6))
    assert [r.input_ref for r in rows] == ["m.jsonl#row=3", "m.jsonl#row=4", "m.jsonl#row=5"]
    assert rows[0].caption == "row 3" and rows[1].problem[0] == "invalid_row" and rows[2].caption == "row 4"
    folder = open_source(str(_folder(tmp_path / "images")))
    first, second = folder.of_range(0, 2)
    assert (first.input_ref, first.caption, second.input_ref) == ("a.png", "a caption", "b.png")


def test_a_parquet_range_reads_only_the_row_groups_that_hold_it(tmp_path):
    path = _parquet(tmp_path / "m.parquet", 10, group=3)  # groups: rows 0-2, 3-5, 6-8, 9
    metadata = pq.ParquetFile(path).metadata

    assert _row_groups(metadata, (4, 7)) == ([1, 2], 3)
    assert _row_groups(metadata, (9, 10)) == ([3], 9)
    assert _row_groups(metadata, (3, 3)) == ([], 0)
    assert _row_groups(metadata, None) == ([0, 1, 2, 3], 0)
    rows = list(ManifestFile(path).rows(["image", "caption"], (4, 7)))
    assert rows == [(f"m.parquet#row={i}", {"image": f"{i}.png", "caption": f"row {i}"}) for i in range(4, 7)]
