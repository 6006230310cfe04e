"""Statistics kept as the run goes: the real runner, decode tasks, stages and shard writer, answered by
the world oracle (no engine), on a world set plus one empty image file.

A kill is taken as the disk it leaves: the output folder is copied while the run is between two inputs
after its second shard closed; that copy is resumed like a killed run's folder."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from got_data.annotate.runner import PipelineRun, RunOptions
from got_data.shards.layout import list_shards
from got_data.shards.reader import iter_samples
from got_data.spec import load_spec
from got_data.world.oracle import OraclePool, WorldOracle, open_world_input
from got_data.world.sets import read_truth, write_world_set

SHARDS = Path(__file__).resolve().parents[1] / "data" / "shards"
INPUTS = 8  # world scenes, plus one empty file
PER_SHARD = 2


def _pools(spec, truth):
    vlm = spec.models["vlm"]
    oracle = WorldOracle(truth, pixel_bounds=(vlm.min_pixels, vlm.max_pixels))
    return {role: OraclePool(role, oracle) for role in spec.roles()}


def _run(spec, truth, source, out: Path) -> dict:
    options = RunOptions(out_dir=out, show_progress=False, samples_per_shard=PER_SHARD, max_images_in_flight=1)
    return PipelineRun(spec, source, _pools(spec, truth), options).run()


def _snapshot_after_two_shards(source, out: Path, copy: Path):
    """The source, copying `out` as soon as two shards are finished (in-flight 1: the runner is idle)."""
    for item in source:
        if not copy.exists() and out.exists() and len(list_shards(out)) >= 2:
            shutil.copytree(out, copy)
        yield item


@pytest.fixture(scope="module")
def killed_and_resumed(ray_session, tmp_path_factory):
    work = tmp_path_factory.mktemp("run-stats")
    images = write_world_set(work / "set", "t2i", INPUTS, seed=5)
    (images / "zz-empty.png").write_bytes(b"")
    spec, truth = load_spec("t2i-world.yaml"), read_truth(work / "set")
    full, killed = work / "full", work / "killed"
    _run(spec, truth, _snapshot_after_two_shards(open_world_input("t2i", images), full, killed), full)
    assert killed.exists(), "the run never had two finished shards"
    at_kill = json.loads((killed / "stats.json").read_text())
    resumed = _run(spec, truth, open_world_input("t2i", images), killed)
    return at_kill, resumed, killed


def test_a_killed_run_leaves_stats_up_to_its_last_shard(killed_and_resumed):
    at_kill, _, _ = killed_and_resumed
    assert at_kill["complete"] is False
    assert at_kill["totals"]["shards"] == 2 and at_kill["totals"]["samples"] == 2 * PER_SHARD
    assert at_kill["dataset"]["records"] == 2 * PER_SHARD
    (attempt,) = at_kill["attempts"]
    assert attempt["status"] == "running" and attempt["ended_at"] is None
    assert attempt["work"]["records"] == 2 * PER_SHARD


def test_a_resumed_run_shows_both_attempts(killed_and_resumed):
    _, stats, out = killed_and_resumed
    first, second = stats["attempts"]
    assert (first["number"], first["status"], first["ended_at"]) == (1, "interrupted", None)
    assert first["work"]["records"] == 2 * PER_SHARD and first["last_shard_at"]
    assert second["status"] == "finished" and second["ended_at"] >= second["started_at"]
    assert second["work"] == stats["run"]
    for attempt in (first, second):
        assert attempt["spec_sha256"] == first["spec_sha256"] and len(attempt["spec_sha256"]) == 64
        assert attempt["argv"] and attempt["pipeline"] == "t2i"
        assert {m["role"] for m in attempt["models"]} == {"vlm", "llm"} and all(m["revision"] for m in attempt["models"])
        assert "got-data" in attempt["packages"] and "ray" in attempt["packages"]
    assert stats["complete"] is True and stats["totals"]["samples"] == INPUTS
    assert stats["totals"]["rejects_by_reason"] == {"decode/empty_file": 1}
    assert json.loads((out / "stats.json").read_text()) == stats


def test_distributions_describe_exactly_the_shards_on_disk(killed_and_resumed):
    _, stats, out = killed_and_resumed
    records = [sample.record for sample in iter_samples(out)]
    dataset = stats["dataset"]
    assert dataset["records"] == len(records) == INPUTS
    boxes = [sum(len(obj.boxes) for obj in r.objects) for r in records]
    assert dataset["boxes_per_record"]["values"] == {str(n): boxes.count(n) for n in set(boxes)}
    assert dataset["box_area"]["count"] == sum(boxes)
    assert dataset["got_chars"]["min"] == min(len(r.got) for r in records)
    assert dataset["got_chars"]["max"] == max(len(r.got) for r in records)
    assert dataset["prompt_chars"]["total"] == sum(len(r.prompt) for r in records)


def test_objects_and_boxes_are_counted_as_what_they_are():
    """A T2I record with a phrase boxed twice has fewer objects than boxes; an edit names one edited object
    whatever its regions and placed objects' boxes: the run's means and the dataset's tallies count both as
    the shard index does (num_objects, num_boxes), never objects under the name of boxes."""
    from got_data.annotate.stats import DatasetStats, RunStats
    from got_data.shards.index import record_counts

    records = [s.record for kind in ("t2i", "edit", "multiturn") for s in iter_samples(SHARDS / kind)]
    counts = [record_counts(r) for r in records]
    assert any(objects != boxes for objects, boxes in counts), "the committed shards must tell them apart"
    work, dataset = RunStats(["assemble"]), DatasetStats()
    for record in records + records[:1]:
        work.add_record(record)
        dataset.add_record(record)
    work.add_record(records[0], -1)  # a record whose write failed is taken back
    run = work.as_dict()
    assert run["records"] == len(records)
    assert run["objects_per_record"] == round(sum(o for o, _ in counts) / len(records), 3)
    assert run["boxes_per_record"] == round(sum(b for _, b in counts) / len(records), 3)
    both = counts + counts[:1]
    stored = dataset.to_dict()
    assert stored["objects_per_record"]["values"] == {str(n): [o for o, _ in both].count(n) for n, _ in both}
    assert stored["boxes_per_record"]["values"] == {str(n): [b for _, b in both].count(n) for _, n in both}


def test_latency_percentiles_per_stage(killed_and_resumed):
    _, stats, _ = killed_and_resumed
    run = stats["run"]
    for stage, counts in run["stages"].items():
        latency = run["latency_s"][stage]
        assert latency["count"] == counts["entered"] > 0
        assert 0 <= latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]


def test_the_progress_line_and_stats_show_live_records_per_second_per_pool(ray_session, tmp_path):
    import io

    from rich.console import Console

    images = write_world_set(tmp_path / "set", "t2i", 4, seed=8)
    spec, truth = load_spec("t2i-world.yaml"), read_truth(tmp_path / "set")
    screen = io.StringIO()
    options = RunOptions(out_dir=tmp_path / "out", samples_per_shard=PER_SHARD,
                         console=Console(file=screen, width=240, force_terminal=False))
    stats = PipelineRun(spec, open_world_input("t2i", images), _pools(spec, truth), options).run()
    rates = stats["run"]["records_per_s_by_role"]
    assert set(rates) == {"vlm", "llm"} and all(rate > 0 for rate in rates.values())
    assert rates["vlm"] >= stats["run"]["records_per_s"]  # the last VLM stage (ground) comes before the record
    # (both over the same elapsed time)
    last = [line for line in screen.getvalue().splitlines() if "rec/s" in line][-1]
    assert "rec/s (llm " in last and ", vlm " in last and last.count("/s") == 3, last


def test_pool_rates_count_the_inputs_past_each_roles_last_stage():
    import time

    from got_data.annotate.progress import pool_rates_text
    from got_data.annotate.stats import RunStats

    stats = RunStats(["recaption", "ground", "assemble"], role_stages={"vlm": "ground"},
                     started=time.monotonic() - 2.0)
    stats.passed.update({"recaption": 10, "ground": 6})
    assert stats.records_per_s_by_role() == {"vlm": pytest.approx(3.0, rel=0.05)}
    assert pool_rates_text({"llm": 2.5, "vlm": 3.0}) == " (llm 2.50/s, vlm 3.00/s)" and pool_rates_text({}) == ""


def test_annotators_live_counts_sum_into_the_runs_rates():
    """The driver of a split run sums its annotators' counts and shows rates over its own clock."""
    from got_data.annotate.progress import live_fields
    from got_data.annotate.stats import LiveCounts, RunStats

    a = RunStats(["recaption", "ground", "assemble"], role_stages={"llm": "recaption", "vlm": "ground"})
    b = RunStats(["recaption", "ground", "assemble"], role_stages={"llm": "recaption", "vlm": "ground"})
    a.inputs, a.records, a.passed = 7, 4, Counter({"recaption": 6, "ground": 5})
    b.inputs, b.records, b.passed = 5, 2, Counter({"recaption": 4, "ground": 3})
    b.rejects["decode/empty_file"] += 1
    live = sum([a.live(), b.live()], LiveCounts())
    assert (live.inputs, live.records, live.rejects) == (12, 6, 1)
    assert live.records_per_s_by_role(2.0) == {"llm": 5.0, "vlm": 4.0} and live.records_per_s(2.0) == 3.0
    assert live_fields(live, 2.0) == {"records": 6, "rejects": 1, "rate": 3.0, "pools": " (llm 5.00/s, vlm 4.00/s)"}
    assert live_fields(LiveCounts(), 0.0) == {"records": 0, "rejects": 0, "rate": 0.0, "pools": ""}
