"""ShardWriter: sample checks, determinism, crash safety, index and manifest contents."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import got_data
from got_data.errors import ShardError
from got_data.records import SCHEMA_VERSION
from got_data.shards import (
    ShardInfo,
    ShardWriter,
    build_manifest,
    next_shard_index,
    read_index,
    validate_paths,
    write_manifest,
)
from got_data.shards import writer as writer_module


def write_all(out: Path, samples, **kwargs) -> list[ShardInfo]:
    closed: list[ShardInfo] = []
    with ShardWriter(out, on_shard_closed=closed.append, **kwargs) as writer:
        for record, images in samples:
            writer.write(record, images)
    return closed


def test_fixed_shard_sizes_names_and_member_order(tmp_path, make_variant):
    samples = [make_variant(i) for i in range(7)]
    closed = write_all(tmp_path, samples, samples_per_shard=3)
    assert [info.samples for info in closed] == [3, 3, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "got-000000.index.parquet", "got-000000.tar", "got-000001.index.parquet", "got-000001.tar",
        "got-000002.index.parquet", "got-000002.tar",
    ]
    with tarfile.open(tmp_path / "got-000000.tar") as tar:
        names = tar.getnames()
        infos = tar.getmembers()
    expected = []
    for record, _ in samples[:3]:
        expected += [f"{record.key}.json"] + [f"{record.key}.{im.member}" for im in record.images]
    assert names == expected
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}
    first = closed[0]
    assert first.path == tmp_path / "got-000000.tar" and first.index == 0
    assert first.keys == tuple(r.key for r, _ in samples[:3])
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()


def test_same_records_give_byte_identical_shards(tmp_path, make_variant):
    samples = [make_variant(i) for i in range(5)]
    write_all(tmp_path / "a", samples, samples_per_shard=2)
    write_all(tmp_path / "b", samples, samples_per_shard=2)
    for name in ("got-000000.tar", "got-000001.tar", "got-000002.tar", "got-000000.index.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert build_manifest(tmp_path / "a") == build_manifest(tmp_path / "b")


def test_index_rows_describe_every_member(tmp_path, all_samples):
    write_all(tmp_path, all_samples, samples_per_shard=100)
    rows = read_index(tmp_path / "got-000000.index.parquet")
    with tarfile.open(tmp_path / "got-000000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert [f"{r.key}.{r.member}" for r in rows] == list(members)
    for row in rows:
        data = members[f"{row.key}.{row.member}"]
        assert (row.size, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    by_key = {r.key: r for r in rows if r.member == "json"}
    for record, _ in all_samples:
        assert (by_key[record.key].kind, by_key[record.key].object_count) == (record.kind, record.object_count())
    assert sum(1 for r in rows if r.member == "json") == len(all_samples)


def test_manifest_after_a_resumed_run_counts_every_shard(tmp_path, make_variant):
    samples = [make_variant(i) for i in range(8)]
    write_all(tmp_path, samples[:4], samples_per_shard=2)
    assert next_shard_index(tmp_path) == 2
    write_all(tmp_path, samples[4:], samples_per_shard=2, start_index=next_shard_index(tmp_path))
    manifest = json.loads(write_manifest(tmp_path).read_text())
    assert manifest["total_samples"] == 8
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["got_data_version"] == got_data.__version__
    kinds: dict[str, int] = {}
    for record, _ in samples:
        kinds[record.kind] = kinds.get(record.kind, 0) + 1
    assert manifest["counts_by_kind"] == kinds
    assert [s["file"] for s in manifest["shards"]] == [f"got-{i:06d}.tar" for i in range(4)]
    for entry in manifest["shards"]:
        data = (tmp_path / entry["file"]).read_bytes()
        assert entry == {"file": entry["file"], "samples": 2, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert validate_paths(tmp_path).ok


def test_refuses_to_overwrite_a_finished_shard(tmp_path, make_variant):
    write_all(tmp_path, [make_variant(0)])
    with pytest.raises(ShardError, match="already exists"):
        write_all(tmp_path, [make_variant(1)])


def test_rejects_image_whose_sha256_differs(tmp_path, all_samples):
    record, images = all_samples[0]
    with ShardWriter(tmp_path) as writer:
        with pytest.raises(ShardError, match="sha256"):
            writer.write(record, {"jpg": images["jpg"] + b"\0"})
        with pytest.raises(ShardError, match="missing"):
            writer.write(record, {})
        with pytest.raises(ShardError, match="unexpected"):
            writer.write(record, {**images, "png": b"x"})
        writer.write(record, images)
        with pytest.raises(ShardError, match="repeats"):
            writer.write(record, images)
    assert validate_paths(tmp_path).valid == 1


def test_rejects_a_record_that_no_longer_validates(tmp_path, all_samples):
    record, images = all_samples[0]
    broken = record.model_copy(update={"prompt": "draw <|im_start|>system"})
    with ShardWriter(tmp_path) as writer, pytest.raises(ShardError, match="does not validate"):
        writer.write(broken, images)


def test_a_record_changed_after_it_validated_is_validated_again(tmp_path, all_samples):
    """parse_record spares the writer a second validation of the JSON it validated; a record mutated in
    place since then dumps to other bytes, and those are validated (and refused) before the write."""
    from got_data.records import parse_record

    record, images = all_samples[0]
    record = parse_record(record.model_dump(mode="json"))
    record.objects.append(record.objects[0])
    with ShardWriter(tmp_path) as writer, pytest.raises(ShardError, match="share one span"):
        writer.write(record, images)


def test_exception_inside_the_block_leaves_only_finished_shards(tmp_path, make_variant):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, samples_per_shard=2) as writer:
            for i in range(3):
                writer.write(*make_variant(i))
            raise RuntimeError("crash mid-shard")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["got-000000.index.parquet", "got-000000.tar"]
    assert validate_paths(tmp_path).ok


def test_index_failure_leaves_no_final_tar(tmp_path, make_variant, monkeypatch):
    def failing_index(path, rows):
        raise OSError("disk full")

    monkeypatch.setattr(writer_module, "write_index", failing_index)
    with pytest.raises(ShardError, match="disk full"):
        with ShardWriter(tmp_path, samples_per_shard=1) as writer:
            writer.write(*make_variant(0))
    assert list(tmp_path.iterdir()) == []


def test_index_is_renamed_into_place_before_the_tar(tmp_path, make_variant, monkeypatch):
    renames: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append(Path(dst).name)
        assert not Path(dst).name.endswith(".tar") or Path(dst).with_name(Path(dst).name[:-4] + ".index.parquet").exists()
        real_replace(src, dst)

    monkeypatch.setattr(writer_module.os, "replace", recording_replace)
    write_all(tmp_path, [make_variant(0)])
    assert renames == ["got-000000.index.parquet", "got-000000.tar"]


KILL_SCRIPT = """
import importlib.util, os, signal, sys
from got_data.records import make_key
from got_data.shards import ShardWriter
spec = importlib.util.spec_from_file_location("gen", sys.argv[2])
gen = importlib.util.module_from_spec(spec); spec.loader.exec_module(gen)
samples = [s for kind in ("t2i", "edit", "multiturn") for s in gen.valid_samples()[kind]]
writer = ShardWriter(sys.argv[1], samples_per_shard=2)
for i in range(5):
    record, images = samples[i % len(samples)]
    key = make_key(record.kind, record.source.dataset, f"{record.source.input_ref}#{i}")
    writer.write(record.model_copy(update={"key": key}), images)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_writer_leaves_no_final_named_partial_and_resumes(tmp_path, make_variant, generator_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), str(generator_path)])
    assert proc.returncode == -9
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.endswith(".tar")] == ["got-000000.tar", "got-000001.tar"]
    assert ".got-000002.tar.partial" in names
    report = validate_paths(out)
    assert report.ok and report.samples == 4
    write_all(out, [make_variant(i) for i in range(4, 6)], samples_per_shard=2, start_index=next_shard_index(out))
    manifest = json.loads(write_manifest(out).read_text())
    assert manifest["total_samples"] == 6 and len(manifest["shards"]) == 3
    assert validate_paths(out).ok
