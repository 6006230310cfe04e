"""Our shards read back with the tools people train with: webdataset, Ray Data, HF datasets, tar."""

from __future__ import annotations

import io
import subprocess

import pytest
from PIL import Image

from got_data.records import parse_record
from got_data.shards import decode_sample, iter_samples


def expected(shards_dir, kind):
    return {s.key: s for s in iter_samples(shards_dir / kind)}


@pytest.mark.parametrize("kind", ["t2i", "edit", "multiturn"])
def test_webdataset_pipeline_maps_decode_sample(shards_dir, kind):
    import webdataset as wds

    url = str(shards_dir / kind / "got-000000.tar")
    dataset = wds.WebDataset(url, shardshuffle=False, empty_check=False).map(decode_sample)
    got = {s.key: s for s in dataset}
    want = expected(shards_dir, kind)
    assert got.keys() == want.keys()
    for key, sample in got.items():
        assert (sample.record, sample.images) == (want[key].record, want[key].images)


@pytest.mark.engine
def test_ray_read_webdataset(shards_ray, shards_dir):
    import ray.data

    tars = [str(shards_dir / kind / "got-000000.tar") for kind in ("t2i", "edit", "multiturn")]
    rows = ray.data.read_webdataset(tars, decoder=None).take_all()
    got = {s.key: s for s in (decode_sample(row) for row in rows)}
    want = {**expected(shards_dir, "t2i"), **expected(shards_dir, "edit"), **expected(shards_dir, "multiturn")}
    assert got.keys() == want.keys()
    for key, sample in got.items():
        assert (sample.record, sample.images) == (want[key].record, want[key].images)


@pytest.mark.parametrize("kind", ["t2i", "edit"])
def test_hugging_face_datasets_loads_uniform_shards(shards_dir, kind, tmp_path):
    from datasets import load_dataset

    tar = str(shards_dir / kind / "got-000000.tar")
    loaded = load_dataset("webdataset", data_files={"train": [tar]}, split="train", cache_dir=str(tmp_path))
    want = expected(shards_dir, kind)
    assert sorted(loaded["__key__"]) == sorted(want)
    for row in loaded:
        sample = want[row["__key__"]]
        assert parse_record(row["json"]) == sample.record
        for info in sample.record.images:
            assert row[info.member].size == (info.width, info.height)
            assert row[info.member].size == Image.open(io.BytesIO(sample.images[info.member])).size


def test_hugging_face_datasets_needs_the_same_members_in_every_sample(shards_dir, tmp_path):
    """Multi-turn samples carry one image per turn, so their member sets differ; without a dataset card
    `datasets` infers one schema per tar and refuses that. Output folders carry the card that declares
    every member (test_loaders.py); bare tars are read with webdataset, wids or iter_samples."""
    from datasets import load_dataset

    tar = str(shards_dir / "multiturn" / "got-000000.tar")
    with pytest.raises(ValueError, match="share the same prefix or the same types"):
        load_dataset("webdataset", data_files={"train": [tar]}, split="train", cache_dir=str(tmp_path))


@pytest.mark.parametrize("kind", ["t2i", "edit", "multiturn"])
def test_plain_tar_lists_every_member(shards_dir, kind):
    tar = shards_dir / kind / "got-000000.tar"
    listed = subprocess.run(["tar", "-tf", str(tar)], check=True, capture_output=True, text=True).stdout.split()
    want = []
    for sample in iter_samples(tar):
        want += [f"{sample.key}.json"] + [f"{sample.key}.{im.member}" for im in sample.record.images]
    assert listed == want
