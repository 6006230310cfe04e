"""When the VLM and LLM roles name the same model, one pool serves both: the configuration (pure
logic) and a real run on the tiny Qwen2-VL engine answering every stage, the LLM's included."""

from __future__ import annotations

import os

import pytest
from rich.console import Console

from got_data.annotate.in_flight import DECODE_DEPTH
from got_data.annotate.launch import ModelChoice, annotate, pool_configs
from got_data.annotate.runner import RunOptions
from got_data.ingest import open_source
from got_data.sample_data import sample_images_dir
from got_data.shards.reader import iter_samples
from got_data.spec import load_spec
from tests.annotate.outputs import outcome


def test_one_configuration_serves_both_roles_when_they_name_one_model():
    spec = load_spec("t2i.yaml")
    shared = pool_configs(spec, {"vlm": "/models/qwen-vl", "llm": "/models/qwen-vl"})
    assert shared["vlm"] is shared["llm"]
    assert (shared["vlm"].role, shared["vlm"].num_actors, shared["vlm"].max_pixels) == (
        "vlm", spec.models["vlm"].num_actors + spec.models["llm"].num_actors, spec.models["vlm"].max_pixels)
    assert shared["vlm"].max_model_len == max(spec.models["vlm"].max_model_len, spec.models["llm"].max_model_len)
    apart = pool_configs(spec, {"vlm": "/models/qwen-vl", "llm": "/models/qwen"})
    assert apart["vlm"] is not apart["llm"] and (apart["vlm"].model, apart["llm"].model) == ("/models/qwen-vl", "/models/qwen")


@pytest.mark.engine
def test_one_engine_answers_the_vlm_and_llm_stages(vlm_pool, ray_session, tmp_path):
    spec = load_spec("t2i-tiny.yaml")
    before = vlm_pool.stats()["actors"][0]["engine"]["served"]
    options = RunOptions(out_dir=tmp_path / "out", samples_per_shard=2, show_progress=False,
                         console=Console(file=open(os.devnull, "w")))
    stats = annotate(spec, open_source(str(sample_images_dir())), options, ModelChoice(),
                     pools={"vlm": vlm_pool, "llm": vlm_pool})
    samples, rejects = outcome(tmp_path / "out")
    assert len(samples) + len(rejects) == stats["run"]["inputs_seen"] > 0
    requests = stats["run"]["tokens_per_stage"]
    assert requests["extract_entities"]["requests"] > 0  # the LLM stage ran, on the VLM's engine
    served = vlm_pool.stats()["actors"][0]["engine"]["served"] - before
    assert served == sum(stage["requests"] for stage in requests.values())
    cpus = ray_session.cluster_resources()["CPU"]
    assert stats["run"]["max_images_in_flight"] == vlm_pool.request_capacity() + int(cpus * DECODE_DEPTH)  # once
    for sample in iter_samples(tmp_path / "out") if samples else []:
        names = {m.role: m.name for m in sample.record.provenance.models}
        assert names["llm"] == names["vlm"] == vlm_pool.model_info()["name"]


@pytest.mark.engine
def test_a_second_role_holds_the_pool_until_both_release_it(vlm_pool):
    vlm_pool.add_user()
    vlm_pool.shutdown()  # the second role lets go: the first still holds the engines
    assert vlm_pool.actors() and vlm_pool.model_info()["role"] == "vlm"
