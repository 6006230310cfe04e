"""Records name a model without its host path (provenance is published with the shards)."""

from __future__ import annotations

from got_data.engines.pool import model_name


def test_a_local_folder_is_named_by_its_folder(tmp_path):
    folder = tmp_path / "checkpoints" / "Qwen2-VL-7B-Instruct"
    folder.mkdir(parents=True)
    assert model_name(str(folder)) == "Qwen2-VL-7B-Instruct"
    assert model_name(str(folder) + "/") == "Qwen2-VL-7B-Instruct"


def test_a_hugging_face_cache_snapshot_is_named_by_its_hub_id(tmp_path):
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-3B-Instruct" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert model_name(str(snapshot)) == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_a_hub_id_is_kept_and_a_missing_absolute_path_still_loses_its_folders():
    assert model_name("Qwen/Qwen2-VL-7B-Instruct") == "Qwen/Qwen2-VL-7B-Instruct"
    assert model_name("/no/such/models/llm") == "llm"
