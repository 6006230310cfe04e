"""The arithmetic of `got-data plan` (pure logic): per-input costs, device seconds, the device split,
throughput tables and the size of a model from its config.json."""

from __future__ import annotations

import json

import pytest

from got_data.annotate.projection import (
    PlanError,
    Throughput,
    device_seconds,
    load_throughput_table,
    measured_rows,
    model_params_b,
    pick_row,
    plan_comparison,
    project,
    split_devices,
)

# A sample in the layout `measure_sample` writes: 4 inputs, 3 records.
SAMPLE = {
    "inputs": 4, "records": 3, "rejects": 1,
    "stages": {
        "recaption": {"role": "vlm", "requests": 4, "images": 4, "prompt_tokens": 4000, "output_tokens": 1200},
        "extract_entities": {"role": "llm", "requests": 4, "images": 0, "prompt_tokens": 1600, "output_tokens": 400},
        "ground": {"role": "vlm", "requests": 12, "images": 12, "prompt_tokens": 12000, "output_tokens": 240},
    },
    "roles": {
        "vlm": {"params_b": 7.6, "busy_s": 10.0, "prefix_cache_hit_rate": 0.5, "mm_cache_hit_rate": 0.75},
        "llm": {"params_b": 7.6, "busy_s": 2.0, "prefix_cache_hit_rate": 0.0, "mm_cache_hit_rate": 0.0},
    },
}


def row(prefill: float, decode: float, device: str = "GPU") -> Throughput:
    return Throughput(device=device, model_params_b=7, prefill_tokens_per_s=prefill, decode_tokens_per_s=decode,
                      source="test")


def test_the_projection_scales_the_sample_per_input_and_prices_prefill_and_decode():
    rows = {"vlm": row(1000, 100), "llm": row(2000, 50)}
    plan = project(SAMPLE, 4000, rows, devices=10)
    vlm, llm = plan["roles"]["vlm"], plan["roles"]["llm"]
    assert vlm["requests"] == pytest.approx(16 * 1000) and vlm["images"] == pytest.approx(16 * 1000)
    assert vlm["prompt_tokens"] == pytest.approx(16000 * 1000)
    assert vlm["prefill_tokens"] == pytest.approx(8000 * 1000)  # half the prompt came from the prefix cache
    assert llm["prefill_tokens"] == pytest.approx(1600 * 1000)
    # per input: vlm 2000 prefill / 1000 + 360 decoded / 100 = 5.6 s; llm 400 / 2000 + 100 / 50 = 2.2 s
    assert vlm["device_seconds_per_input"] == pytest.approx(5.6)
    assert llm["device_seconds_per_input"] == pytest.approx(2.2)
    assert plan["totals"]["device_hours"] == pytest.approx(7.8 * 4000 / 3600)
    assert plan["records"] == pytest.approx(3000)
    assert plan["vlm_share"] == pytest.approx(5.6 / 7.8)
    assert plan["split"] == {"vlm": 7, "llm": 3}
    assert plan["wall_s"] == pytest.approx(max(5.6 * 4000 / 7, 2.2 * 4000 / 3))


def test_the_measured_row_gives_back_the_busy_time_it_came_from():
    rows = measured_rows(SAMPLE)
    assert not rows["vlm"].estimate and "measured" in rows["vlm"].source
    plan = project(SAMPLE, SAMPLE["inputs"], rows, devices=2)
    for role in ("vlm", "llm"):
        assert plan["roles"][role]["device_hours"] * 3600 == pytest.approx(SAMPLE["roles"][role]["busy_s"])
    assert plan["wall_s"] == pytest.approx(10.0)  # one engine per role, side by side


def test_devices_are_split_in_proportion_with_one_at_least_per_role():
    assert split_devices({"vlm": 9.0, "llm": 1.0}, 100) == {"vlm": 90, "llm": 10}
    assert split_devices({"vlm": 99.0, "llm": 1.0}, 3) == {"vlm": 2, "llm": 1}
    assert sum(split_devices({"vlm": 5.0, "llm": 3.0}, 7).values()) == 7
    assert split_devices({"vlm": 1.0, "llm": 1.0}, 1) is None
    plan = project(SAMPLE, 10, {"vlm": row(1000, 100), "llm": row(2000, 50)}, devices=1)
    assert plan["split"] is None and plan["wall_s"] == pytest.approx(7.8 * 10)  # roles take turns


def test_a_throughput_file_replaces_devices_and_a_bad_one_is_named(tmp_path):
    shipped = load_throughput_table()
    assert {"H100", "A100"} <= shipped.keys()
    assert all(r.estimate and r.source for rows in shipped.values() for r in rows)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"devices": {"H100": [
        {"model_params_b": 7, "prefill_tokens_per_s": 111, "decode_tokens_per_s": 22, "source": "our cluster",
         "estimate": False}]}}))
    table = load_throughput_table(mine)
    assert pick_row(table, "H100", 7.6) == Throughput("H100", 7, 111, 22, "our cluster", False)
    assert table["A100"] == shipped["A100"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  X: [{model_params_b: 7, prefill_tokens_per_s: fast}]\n")
    with pytest.raises(PlanError, match="bad.yaml.*device 'X'"):
        load_throughput_table(bad)
    with pytest.raises(PlanError, match="no throughput figures for device 'TPU'.*H100"):
        pick_row(shipped, "TPU", 7)


def test_the_nearest_model_size_is_picked():
    table = {"G": [Throughput("G", size, size, size, "t") for size in (2, 7, 72)]}
    assert pick_row(table, "G", 7.6).model_params_b == 7
    assert pick_row(table, "G", 3).model_params_b == 2
    assert pick_row(table, "G", 30).model_params_b == 72
    assert pick_row(table, "G", 0.001).model_params_b == 2


def test_model_size_from_config():
    qwen2_7b = {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False}
    assert model_params_b(qwen2_7b) == pytest.approx(7.62, abs=0.02)
    assert model_params_b({"text_config": qwen2_7b, "model_type": "qwen2_vl"}) == pytest.approx(7.62, abs=0.02)
    with pytest.raises(PlanError, match="hidden_size"):
        model_params_b({"model_type": "x"})


def test_a_run_is_put_beside_its_plan():
    plan = {"inputs": 100, "sample": SAMPLE}
    stats = {"run": {"inputs_seen": 10, "skipped_already_done": 2, "records": 4,
                     "tokens_per_stage": {"recaption": {"requests": 8, "prompt_tokens": 8800, "output_tokens": 2400}}}}
    compared = plan_comparison(plan, stats)
    assert compared["inputs"] == {"planned": 100, "actual": 10}
    assert compared["records_per_input"] == {"planned": 0.75, "actual": 0.5}
    assert compared["per_input"]["recaption"]["prompt_tokens"] == {"planned": 1000, "actual": 1100}
    assert compared["per_input"]["ground"]["requests"] == {"planned": 3, "actual": 0}


def test_device_seconds_of_one_input():
    cost = {"prefill_tokens": 3000.0, "output_tokens": 100.0}
    assert device_seconds(cost, row(1500, 50)) == pytest.approx(4.0)
