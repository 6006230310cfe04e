"""`got-data plan` on a small world set with the tiny models: a seeded sample annotated through the real
runner and pools, its measured costs, the projection's arithmetic against them, plan.json from the CLI, and
a later annotate run's stats.json beside the plan."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from got_data.annotate.launch import ModelChoice, annotate
from got_data.annotate.plan import PlanRequest, SampledSource, make_plan
from got_data.annotate.projection import MEASURED_DEVICE, PlanError
from got_data.annotate.runner import RunOptions
from got_data.cli import app
from got_data.ingest import open_source
from got_data.spec import load_spec
from got_data.world.sets import write_world_set

pytestmark = pytest.mark.engine

INPUTS, SAMPLE = 10, 4


def quiet() -> Console:
    return Console(quiet=True)


@pytest.fixture(scope="module")
def world_images(tmp_path_factory):
    return write_world_set(tmp_path_factory.mktemp("plan-world"), "t2i", INPUTS, seed=3)


@pytest.fixture(scope="module")
def planned(vlm_pool, llm_pool, world_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan-out")
    request = PlanRequest(sample_size=SAMPLE, seed=1, device="A100", devices=4, out_dir=out)
    pools = {"vlm": vlm_pool, "llm": llm_pool}
    before = {role: pool.stats()["engine"] for role, pool in pools.items()}
    plan = make_plan(load_spec("t2i-tiny.yaml"), open_source(str(world_images)), request, pools, quiet())
    engines = {role: (before[role], pool.stats()["engine"]) for role, pool in pools.items()}
    return plan, out, engines


def test_the_sample_is_a_seeded_choice_in_input_order(world_images):
    source = open_source(str(world_images))
    refs = [item.input_ref for item in SampledSource(source, SAMPLE, seed=1, total=INPUTS)]
    assert len(refs) == SAMPLE and refs == sorted(refs)
    assert refs == [item.input_ref for item in SampledSource(source, SAMPLE, seed=1, total=INPUTS)]
    assert refs != [item.input_ref for item in SampledSource(source, SAMPLE, seed=2, total=INPUTS)]


def test_the_sample_is_measured_per_stage(planned):
    plan, out, _ = planned
    sample = plan["sample"]
    assert json.loads((out / "plan.json").read_text()) == plan
    assert plan["inputs"] == INPUTS and sample["inputs"] == SAMPLE
    assert sample["records"] + sample["rejects"] == SAMPLE
    recaption, ground = sample["stages"]["recaption"], sample["stages"]["ground"]
    assert recaption["role"] == "vlm" and sample["stages"]["extract_entities"]["role"] == "llm"
    assert recaption["requests"] == SAMPLE and recaption["images"] == SAMPLE  # one image per recaption request
    assert ground["images"] == ground["requests"]
    assert recaption["prompt_tokens"] > 0 and recaption["output_tokens"] > 0
    for role in ("vlm", "llm"):
        measured = sample["roles"][role]
        assert 0 < measured["busy_s"] <= sample["wall_s"] + 1
        assert 0 <= measured["prefix_cache_hit_rate"] <= 1 and 0 <= measured["mm_cache_hit_rate"] <= 1
        assert 0 < measured["params_b"] < 0.1  # the tiny models



def test_cache_hit_rates_are_the_engines_counts_over_the_sample(planned):
    plan, _, engines = planned
    for role, (before, after) in engines.items():
        for cache in ("prefix_cache", "mm_cache"):
            queries = after[f"{cache}_queries"] - before[f"{cache}_queries"]
            hits = after[f"{cache}_hits"] - before[f"{cache}_hits"]
            assert plan["sample"]["roles"][role][f"{cache}_hit_rate"] == pytest.approx(hits / queries if queries else 0)
    # the sample's images are each asked about again (ground after recaption): the multimodal cache hits
    assert plan["sample"]["roles"]["vlm"]["mm_cache_hit_rate"] > 0


def test_the_projection_is_the_sample_scaled_to_the_input(planned):
    plan, _, _ = planned
    sample, scale = plan["sample"], INPUTS / SAMPLE
    for device in (MEASURED_DEVICE, "A100"):
        projection = plan["projections"][device]
        for role, cost in projection["roles"].items():
            stages = [s for s in sample["stages"].values() if s["role"] == role]
            for key in ("requests", "prompt_tokens", "output_tokens", "images"):
                assert cost[key] == pytest.approx(sum(s[key] for s in stages) * scale)
            hit = sample["roles"][role]["prefix_cache_hit_rate"]
            assert cost["prefill_tokens"] == pytest.approx(cost["prompt_tokens"] * (1 - hit))
            rates = cost["throughput"]
            seconds = cost["prefill_tokens"] / rates["prefill_tokens_per_s"] + \
                cost["output_tokens"] / rates["decode_tokens_per_s"]
            assert cost["device_hours"] == pytest.approx(seconds / 3600)
    here = plan["projections"][MEASURED_DEVICE]
    for role, cost in here["roles"].items():  # this machine's row gives back its measured busy time, scaled
        assert cost["device_hours"] * 3600 == pytest.approx(sample["roles"][role]["busy_s"] * scale)
    gpu = plan["projections"]["A100"]
    assert all(cost["throughput"]["estimate"] for cost in gpu["roles"].values())
    assert sum(gpu["split"].values()) == 4 and min(gpu["split"].values()) >= 1


def test_an_annotate_run_into_the_planned_folder_puts_its_figures_beside_the_plan(planned, vlm_pool, llm_pool,
                                                                                   world_images):
    plan, out, _ = planned
    options = RunOptions(out_dir=out, show_progress=False, console=quiet())
    stats = annotate(load_spec("t2i-tiny.yaml"), open_source(str(world_images)), options, ModelChoice(),
                     pools={"vlm": vlm_pool, "llm": llm_pool})
    compared = json.loads((out / "stats.json").read_text())["plan"]
    assert compared == stats["plan"]
    assert compared["inputs"] == {"planned": INPUTS, "actual": INPUTS}
    recaption = compared["per_input"]["recaption"]["requests"]
    assert recaption == {"planned": 1.0, "actual": 1.0}
    tokens = stats["run"]["tokens_per_stage"]["ground"]["prompt_tokens"]
    assert compared["per_input"]["ground"]["prompt_tokens"]["actual"] == pytest.approx(tokens / INPUTS)


def test_the_cli_prints_the_projection_and_writes_plan_json(vlm_pool, llm_pool, tiny_models, world_images, tmp_path):
    out = tmp_path / "planned"
    result = CliRunner().invoke(app, [
        "plan", str(world_images), "--config", "t2i-tiny.yaml", "--vlm", str(tiny_models.vlm),
        "--llm", str(tiny_models.llm), "--sample", "2", "--gpu-type", "H100", "--gpus", "100", "--out", str(out),
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "plan.json").read_text())
    assert plan["sample"]["inputs"] == 2 and plan["projections"]["H100"]["devices"] == 100
    assert "H100 (estimate)" in result.output and "plan.json" in result.output


def test_unknown_devices_and_bad_tables_fail_before_any_work(world_images, tmp_path):
    result = CliRunner().invoke(app, ["plan", str(world_images), "--gpu-type", "TPU9", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no throughput figures for device 'TPU9'" in result.output
    with pytest.raises(PlanError, match="--sample must be at least 1"):
        make_plan(load_spec("t2i-tiny.yaml"), open_source(str(world_images)), PlanRequest(sample_size=0), {}, quiet())
    assert not (tmp_path / "plan.json").exists()
