"""The per-sample index (version 2): what people filter and seek on, and older indexes still read."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from got_data.errors import ShardError
from got_data.shards import ShardWriter, iter_samples, read_index, validate_paths, write_manifest
from got_data.shards.index import INDEX_VERSION, VALIDATION_PERCENT, index_version, read_sample_index, write_index
from got_data.shards.layout import index_filename

FORMAT_MD = Path(__file__).resolve().parents[2] / "got_data" / "shards" / "FORMAT.md"


def write_all(folder, samples, samples_per_shard=100):
    with ShardWriter(folder, samples_per_shard=samples_per_shard) as writer:
        for record, images in samples:
            writer.write(record, images)
    write_manifest(folder)


def boxes_in(record) -> int:
    if record.kind == "t2i":
        return sum(len(obj.boxes) for obj in record.objects)
    placed = sum(len(obj.boxes) for obj in record.objects or [])  # schema 1.1: the other objects the GoT names
    if record.kind == "edit":
        return len(record.edit.regions) + placed
    return sum(len(step.regions) for step in record.steps) + placed


def test_one_row_per_sample_with_what_people_filter_on(tmp_path, all_samples):
    write_all(tmp_path, all_samples)
    rows = read_sample_index(tmp_path / index_filename("got", 0))
    assert index_version(tmp_path / index_filename("got", 0)) == INDEX_VERSION == 2
    assert [row.key for row in rows] == [record.key for record, _ in all_samples]
    for row, (record, _) in zip(rows, all_samples):
        assert (row.input_ref, row.kind) == (record.source.input_ref, record.kind)
        assert (row.width, row.height) == (record.images[0].width, record.images[0].height)
        assert row.got_chars == len(record.got)
        assert row.num_boxes == boxes_in(record)
        expected_objects = {"t2i": len(record.objects or []), "edit": 1,
                            "multiturn": len(getattr(record, "steps", []))}[record.kind]
        assert row.num_objects == expected_objects
        assert [m.member for m in row.members] == ["json"] + [im.member for im in record.images]


def test_member_offsets_give_random_access_to_the_bytes(tmp_path, all_samples):
    write_all(tmp_path, all_samples, samples_per_shard=4)
    by_key = {s.key: s for s in iter_samples(tmp_path)}
    for tar in sorted(tmp_path.glob("got-*.tar")):
        rows = read_sample_index(tar.with_name(tar.name.replace(".tar", ".index.parquet")))
        with open(tar, "rb") as f:
            for row in rows:
                for entry in row.members:
                    f.seek(entry.offset)
                    data = f.read(entry.size)
                    assert hashlib.sha256(data).hexdigest() == entry.sha256
                    if entry.member != "json":
                        assert data == by_key[row.key].images[entry.member]
                    else:
                        assert data == by_key[row.key].record.model_dump_json().encode()


def test_the_split_is_a_deterministic_hash_of_the_key(tmp_path, make_variant):
    samples = [make_variant(i) for i in range(1000)]
    write_all(tmp_path / "a", samples, samples_per_shard=1000)
    write_all(tmp_path / "b", list(reversed(samples)), samples_per_shard=1000)
    a = {r.key: (r.split, r.split_bucket) for r in read_sample_index(tmp_path / "a" / index_filename("got", 0))}
    b = {r.key: (r.split, r.split_bucket) for r in read_sample_index(tmp_path / "b" / index_filename("got", 0))}
    assert a == b
    assert all((split == "validation") == (bucket < VALIDATION_PERCENT) and 0 <= bucket < 100
               for split, bucket in a.values())
    validation = sum(split == "validation" for split, _ in a.values())
    assert 20 <= validation <= 80  # about 5% of 1000


def format_md_block(language: str, after: str) -> str:
    """The first ```language block of FORMAT.md after the line containing `after`."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text.split(after, 1)[1], flags=re.DOTALL)[0]


def test_formats_md_pyarrow_query_selects_by_split_and_boxes(tmp_path, make_variant):
    """FORMAT.md's pyarrow query, run as written on a folder of shards (with a rejects.parquet beside them)."""
    write_all(tmp_path, [make_variant(i) for i in range(200)], samples_per_shard=50)
    pq.write_table(pa.table({"key": ["k"], "reason": ["empty_file"]}), tmp_path / "rejects.parquet")
    query = format_md_block("python", "Querying with pyarrow")
    assert "/data/got-t2i" in query
    namespace: dict = {}
    exec(compile(query.replace("/data/got-t2i", str(tmp_path)), "FORMAT.md", "exec"), namespace)  # noqa: S102
    table = namespace["table"]
    rows = [row for tar in sorted(tmp_path.glob("got-*.index.parquet")) for row in read_sample_index(tar)]
    want = sorted(row.key for row in rows if row.split == "train" and row.num_boxes >= 3)
    assert want and sorted(table.column("key").to_pylist()) == want
    assert table.column_names == ["key", "input_ref", "width", "height", "num_boxes"]


def test_version_1_indexes_still_read_and_validate(shards_dir):
    for kind in ("t2i", "edit", "multiturn"):
        path = shards_dir / kind / index_filename("got", 0)
        assert index_version(path) == 1
        rows = read_index(path)
        assert {row.member for row in rows} >= {"json"}
        with pytest.raises(ShardError, match="version 1"):
            read_sample_index(path)
        assert validate_paths(shards_dir / kind).ok


def test_an_index_of_unknown_shape_is_refused(tmp_path, all_samples):
    write_all(tmp_path, all_samples)
    path = tmp_path / index_filename("got", 0)
    table = pq.read_table(path).drop_columns(["got_chars"])
    pq.write_table(table, path)
    with pytest.raises(ShardError, match="this got-data reads version 1"):
        read_index(path)
    pq.write_table(pa.table({"key": ["a"]}), path)
    with pytest.raises(ShardError, match="columns"):
        read_index(path)


def test_a_version_2_index_that_disagrees_with_its_tar_is_reported(tmp_path, all_samples):
    write_all(tmp_path, all_samples)
    path = tmp_path / index_filename("got", 0)
    rows = read_sample_index(path)
    first = rows[0]
    tampered = dataclasses.replace(first, members=(dataclasses.replace(first.members[0], size=1),) + first.members[1:])
    write_index(path, [tampered] + rows[1:])
    assert validate_paths(tmp_path).kinds() == {"index_mismatch"}
