"""Reading shards back: iter_samples over files, folders and globs, and decode_sample."""

from __future__ import annotations

import io
import tarfile

import pytest

from got_data.errors import ShardError
from got_data.shards import ShardWriter, decode_sample, iter_samples, resolve_shard_paths
from got_data.shards.layout import member_tarinfo


def test_round_trip_every_kind(tmp_path, all_samples):
    with ShardWriter(tmp_path, samples_per_shard=4) as writer:
        for record, images in all_samples:
            writer.write(record, images)
    read = list(iter_samples(tmp_path))
    assert [s.key for s in read] == [r.key for r, _ in all_samples]
    for sample, (record, images) in zip(read, all_samples):
        assert sample.record == record
        assert sample.images == images
    assert {s.shard for s in read} == {str(tmp_path / f"got-{n:06d}.tar") for n in range((len(all_samples) + 3) // 4)}


def test_paths_may_be_files_folders_or_globs_and_come_sorted(shards_dir):
    by_folder = resolve_shard_paths([shards_dir / "t2i", shards_dir / "edit"])
    by_glob = resolve_shard_paths(str(shards_dir / "*" / "got-*.tar"))
    assert by_folder == sorted(by_folder)
    assert by_folder == [shards_dir / "edit" / "got-000000.tar", shards_dir / "t2i" / "got-000000.tar"]
    assert by_glob == [shards_dir / k / "got-000000.tar" for k in ("edit", "multiturn", "t2i")]
    assert [s.record.kind for s in iter_samples(by_folder[1])] == ["t2i"] * 3


def test_missing_paths_are_errors_not_empty_datasets(tmp_path):
    with pytest.raises(ShardError, match="does not exist"):
        resolve_shard_paths(tmp_path / "nope")
    with pytest.raises(ShardError, match="no shard matches"):
        resolve_shard_paths(str(tmp_path / "*.tar"))
    with pytest.raises(ShardError, match="holds no finished shard"):
        resolve_shard_paths(tmp_path)


@pytest.mark.parametrize("case, message", [
    ("missing_image", "lacks its 'target.png' image"),
    ("orphan_image", "has no json member"),
    ("box_out_of_range", "outside"),
    ("truncated_tar", "tar ends inside a member"),
])
def test_reader_refuses_broken_shards(shards_dir, case, message):
    with pytest.raises(ShardError, match=message):
        list(iter_samples(shards_dir / "broken" / case))


def test_decode_sample_from_a_raw_webdataset_dict(all_samples):
    record, images = all_samples[3]
    raw = {"__key__": record.key, "__url__": "s.tar", "json": record.model_dump_json().encode(), **images}
    sample = decode_sample(raw)
    assert (sample.key, sample.record, sample.images, sample.shard) == (record.key, record, images, "s.tar")
    with pytest.raises(ShardError, match="lacks its"):
        decode_sample({k: v for k, v in raw.items() if k != "target.png"})
    with pytest.raises(ShardError, match="does not list"):
        decode_sample({**raw, "extra.png": b"x"})
    with pytest.raises(ShardError, match="not bytes"):
        decode_sample({**raw, "target.png": object()})
    with pytest.raises(ShardError, match="holds a record with key"):
        decode_sample({**raw, "__key__": "0" * 24})


def test_split_sample_is_rejected(tmp_path, all_samples):
    record, images = all_samples[0]
    other, other_images = all_samples[1]
    path = tmp_path / "got-000000.tar"
    members = [(f"{record.key}.json", record.model_dump_json().encode()),
               (f"{other.key}.json", other.model_dump_json().encode()), (f"{other.key}.jpg", other_images["jpg"]),
               (f"{record.key}.jpg", images["jpg"])]
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            tar.addfile(member_tarinfo(name, len(data)), io.BytesIO(data))
    with pytest.raises(ShardError):
        list(iter_samples(path))
