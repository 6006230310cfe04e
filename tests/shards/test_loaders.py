"""Real annotate output, from mixed JPEG/PNG inputs with and without captions, opens in the loaders
people reach for: HF `datasets` through the folder's dataset card, wids random access, a torch
DataLoader with workers over webdataset, and the package's own reader."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from got_data.records import RECORD_KINDS, parse_record
from got_data.shards import ShardWriter, decode_sample, iter_samples, validate_paths, write_manifest
from got_data.shards.dataset_card import write_dataset_card
from got_data.shards.index import read_sample_index
from got_data.shards.layout import index_path_for, list_shards
from got_data.shards.wids_index import write_wids_index
from got_data.shards.writer import MIN_SHARDS, samples_per_shard_for

KINDS = RECORD_KINDS


def samples_of(out):
    return {s.key: s for s in iter_samples(out)}


def load_hf(folder, cache):
    from datasets import load_dataset

    return load_dataset(str(folder), split="train", cache_dir=str(cache))


def _to_digits(value, digits: int = 12):
    """`value` with every float rounded to `digits` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _to_digits(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_digits(v, digits) for v in value]
    return value


def assert_rows_are_the_samples(rows, out):
    """`datasets` rows of an output folder are its samples: every record, every image member as a column
    (None where a sample has no such member), nothing from the parquet files. Returns the samples by key."""
    samples = samples_of(out)
    assert len(rows) == len(samples) == json.loads((out / "manifest.json").read_text())["total_samples"] > 0
    assert not {"member", "sha256", "stage", "reason"} & set(rows.column_names)  # not the parquet files
    members = {info.member for s in samples.values() for info in s.record.images}
    assert set(rows.column_names) == {"json", "__key__", "__url__"} | members
    for row in rows:
        sample = samples[row["__key__"]]
        # `datasets` decodes the json column with pandas' ujson, whose floats may land one unit in the last place off
        # (a box score of -0.0624 comes back as -0.062400000000000004): equal to 12 significant digits
        loaded = parse_record(row["json"]).model_dump(mode="json")
        assert _to_digits(loaded) == _to_digits(sample.record.model_dump(mode="json"))
        for member in members:
            info = next((im for im in sample.record.images if im.member == member), None)
            if info is None:
                assert row[member] is None  # e.g. turn3.png of a two-turn sequence
            else:
                assert row[member].size == (info.width, info.height)
    return samples


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
@pytest.mark.parametrize("kind", KINDS)
def test_mixed_inputs_give_one_member_name_per_role_losslessly(loader_outputs, kind):
    out = loader_outputs[kind]
    assert validate_paths([out]).ok
    samples = samples_of(out)
    assert samples
    reencoded = kept = 0
    for sample in samples.values():
        for info in sample.record.images:
            assert info.member == ("png" if info.role == "image" else f"{info.role}.png")
            assert info.format == "PNG"
            if info.normalization == ["reencode_png"]:
                reencoded += 1
            else:
                assert info.normalization == [] and info.sha256 == info.original_sha256
                kept += 1
    assert reencoded and kept, "the inputs mix JPEG and PNG files"
    if kind == "t2i":
        captions = [s.record.source.original_caption for s in samples.values()]
        assert None in captions and any(isinstance(c, str) for c in captions)


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
def test_a_jpeg_input_is_stored_as_png_with_the_same_pixels(loader_outputs):
    out = loader_outputs["t2i"]
    images_dir = out.parent / "set" / "images"
    checked = 0
    for sample in samples_of(out).values():
        info = sample.record.images[0]
        if info.normalization != ["reencode_png"]:
            continue
        original = np.asarray(Image.open(images_dir / sample.record.source.input_ref).convert("RGB"))
        stored = np.asarray(Image.open(io.BytesIO(sample.images["png"])).convert("RGB"))
        assert np.array_equal(original, stored)
        checked += 1
    assert checked


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
@pytest.mark.parametrize("kind", KINDS)
def test_hf_load_dataset_on_the_output_folder_gives_images_and_records(loader_outputs, kind, tmp_path):
    out = loader_outputs[kind]
    rejects = out / "rejects.parquet"
    assert rejects.is_file() and pq.read_metadata(rejects).num_rows == 0  # an empty table must not be loaded
    samples = assert_rows_are_the_samples(load_hf(out, tmp_path), out)
    if kind == "multiturn":
        assert len({len(s.record.steps) for s in samples.values()}) > 1, "the sequences vary in length"


@pytest.mark.slow  # the demo takes minutes
@pytest.mark.engine
@pytest.mark.world_models
@pytest.mark.parametrize("kind", KINDS)
def test_hf_load_dataset_on_the_demo_output(demo_output, kind, tmp_path):
    assert_rows_are_the_samples(load_hf(demo_output / kind, tmp_path), demo_output / kind)


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
def test_hf_types_hold_when_the_first_samples_have_nulls_and_fewer_turns(loader_outputs, tmp_path):
    """One shard whose first samples have no caption (null) and the fewest turns, later ones a caption
    and more turns: what breaks `datasets`' type inference from the first samples."""
    for kind, order in (("t2i", lambda s: s.record.source.original_caption is not None),
                        ("multiturn", lambda s: len(s.record.steps))):
        samples = sorted(samples_of(loader_outputs[kind]).values(), key=order)
        folder = tmp_path / kind
        with ShardWriter(folder, samples_per_shard=len(samples)) as writer:
            for sample in samples:
                writer.write(sample.record, sample.images)
        write_manifest(folder)
        write_dataset_card(folder)
        assert order(samples[0]) != order(samples[-1])
        rows = load_hf(folder, tmp_path / "cache")
        assert [parse_record(row["json"]) for row in rows] == [s.record for s in samples]


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
@pytest.mark.parametrize("kind", KINDS)
def test_the_card_states_counts_models_prompts_and_a_licence_to_fill(loader_outputs, kind):
    out = loader_outputs[kind]
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    meta = yaml.safe_load(front)
    assert meta["license"] == "unknown" and "FILL IN" in front
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "got-*.tar"}]
    total = json.loads((out / "manifest.json").read_text())["total_samples"]
    assert f"samples: {total} in {len(list_shards(out))} shard(s) ({kind}: {total})" in card
    record = next(iter(iter_samples(out))).record
    for model in record.provenance.models:
        assert f"| {model.role} | `{model.name}` |" in card
    for stage, sha in record.provenance.prompt_hashes.items():
        assert f"| {stage} | `{sha}` |" in card


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
@pytest.mark.parametrize("kind", KINDS)
def test_wids_random_access_with_the_written_index(loader_outputs, kind, tmp_path, monkeypatch):
    import wids

    monkeypatch.setenv("WIDS_CACHE", str(tmp_path / "wids-cache"))
    out = loader_outputs[kind]
    dataset = wids.ShardListDataset(str(out / "wids.json"), transformations=[])
    keys = [row.key for tar in list_shards(out) for row in read_sample_index(index_path_for(tar))]
    assert len(dataset) == len(keys)
    samples = samples_of(out)
    for i in random.Random(3).sample(range(len(keys)), k=min(5, len(keys))):
        raw = dataset[i]
        assert raw["__key__"] == keys[i]
        record = parse_record(raw[".json"].read())
        assert record == samples[keys[i]].record
        for info in record.images:
            assert raw[f".{info.member}"].read() == samples[keys[i]].images[info.member]


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
def test_a_small_run_makes_enough_shards_for_dataloader_workers(loader_outputs):
    import torch
    import webdataset as wds

    out = loader_outputs["edit"]
    assert len(list_shards(out)) >= min(MIN_SHARDS, len(samples_of(out)))
    urls = [str(p) for p in list_shards(out)]
    dataset = wds.WebDataset(urls, shardshuffle=False).map(decode_sample).map(lambda s: s.key)
    loader = torch.utils.data.DataLoader(dataset, num_workers=2, batch_size=None)
    assert sorted(loader) == sorted(samples_of(out))


def test_shard_size_shrinks_for_small_inputs_only():
    assert samples_per_shard_for(None, 1000) == 1000
    assert samples_per_shard_for(100_000, 1000) == 1000
    assert samples_per_shard_for(80, 1000) == 10
    assert samples_per_shard_for(3, 1000) == 1
    assert samples_per_shard_for(80, 4) == 4
    assert samples_per_shard_for(80, 1000, min_shards=0) == 1000


@pytest.mark.engine  # loader_outputs runs the pipelines on Ray
def test_wids_index_and_card_follow_the_shards_on_disk(loader_outputs, tmp_path):
    samples = list(samples_of(loader_outputs["edit"]).values())
    with ShardWriter(tmp_path, samples_per_shard=3) as writer:
        for sample in samples:
            writer.write(sample.record, sample.images)
    descriptor = json.loads(write_wids_index(tmp_path).read_text())
    assert descriptor["wids_version"] == 1
    assert [s["url"] for s in descriptor["shardlist"]] == [p.name for p in list_shards(tmp_path)]
    assert sum(s["nsamples"] for s in descriptor["shardlist"]) == len(samples)
    assert all(s["filesize"] == (tmp_path / s["url"]).stat().st_size for s in descriptor["shardlist"])
    assert "inputs rejected: not recorded" in write_dataset_card(tmp_path).read_text()
