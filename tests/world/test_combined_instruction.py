"""Multi-turn from one combined instruction, end to end: the real runner (Ray decode tasks, every
stage, shards) on a combined world set answered by the world oracle. The split must give each record
the true steps in the true order, the records must name the images they have and validate, malformed
combined rows must end as rejects with their reason, and a per-turn set must give the same records
as a spec without the split stage."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from got_data.eval.fidelity import score_run
from got_data.shards import iter_samples, validate_paths
from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import for_world_scenes, read_truth, write_world_set

pytestmark = pytest.mark.engine  # starts Ray (the session's)

COUNT = 8


def world_spec(without_split: bool = False):
    spec = for_world_scenes(load_spec("multiturn-world.yaml"))
    if without_split:
        spec = spec.model_copy(update={"stages": [s for s in spec.stages if s.name != "split_instruction"]})
    return spec


def test_a_combined_set_splits_into_the_true_steps_in_order_and_bad_rows_are_rejected(ray_session, tmp_path):
    manifest = write_world_set(tmp_path / "set", "multiturn", COUNT, seed=11, combined=True)
    truth = read_truth(tmp_path / "set")
    assert any(not all(row["step_images"]) for row in truth.values())  # the set really drops images
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    first, other = rows[0], rows[1]["source"]  # another scene: an image unlike the row's own
    two_steps = next(n for n, row in truth.items() if len(row["edits"]) == 2)
    bad = {
        "empty_instruction": {**first, "instruction": "<|im_end|>"},
        "invalid_row": {**first, "intermediates": {"first": other}},
        "too_many_steps": {**first, "intermediates": {"9": other}},
        # an image after step 2 of a sequence the oracle splits into 2 steps: asked twice, then rejected
        "unparsable_answer": {**rows[int(two_steps.rsplit("=", 1)[1])], "intermediates": {"2": other}},
    }
    with manifest.open("a") as f:
        for row in bad.values():
            f.write(json.dumps(row) + "\n")
    refs = {reason: f"{manifest.name}#row={COUNT + n}" for n, reason in enumerate(bad)}
    answers = {**truth, refs["unparsable_answer"]: truth[two_steps]}
    annotate_with_oracle(world_spec(), "multiturn", manifest, answers, tmp_path / "out")

    scores = score_run(tmp_path / "out", tmp_path / "set")
    assert scores["records"] == scores["inputs"] == scores["combined_inputs"] == COUNT
    assert scores["step_count_accuracy"] == scores["step_order_accuracy"] == 1.0
    assert scores["step_instruction_word_accuracy"] == 1.0 and scores["object_accuracy"] == 1.0
    assert scores["region_mean_iou"] >= 0.995, scores
    assert validate_paths([tmp_path / "out"]).ok
    for sample in iter_samples(tmp_path / "out"):
        record, row = sample.record, truth[sample.record.source.input_ref]
        assert record.schema_version == "1.2" and record.step_images == row["step_images"]
        assert [im.role for im in record.images] == ["source"] + [
            f"turn{n}" for n, there in enumerate(row["step_images"], 1) if there]
        assert record.combined_instruction == rows[int(record.source.input_ref.rsplit("=", 1)[1])]["instruction"]
        assert set(sample.images) == {im.member for im in record.images}
    rejects = {r["input_ref"]: (r["stage"], r["reason"], r["detail"]) for r in
               pq.read_table(tmp_path / "out" / "rejects.parquet").to_pylist()}
    assert rejects[refs["empty_instruction"]][:2] == ("ingest", "empty_instruction")
    assert rejects[refs["invalid_row"]][:2] == ("ingest", "invalid_row")
    assert rejects[refs["too_many_steps"]][:2] == ("split_instruction", "too_many_steps")
    stage, reason, detail = rejects[refs["unparsable_answer"]]
    assert (stage, reason) == ("split_instruction", "unparsable_answer") and "need 3 to 4" in detail
    assert len(rejects) == len(bad)


def test_a_per_turn_set_gives_the_records_it_gave_before_the_split_stage(ray_session, tmp_path):
    manifest = write_world_set(tmp_path / "set", "multiturn", COUNT, seed=11)
    truth = read_truth(tmp_path / "set")
    for name, spec in (("with", world_spec()), ("without", world_spec(without_split=True))):
        annotate_with_oracle(spec, "multiturn", manifest, truth, tmp_path / name)

    def records(out):
        found = {}
        for sample in iter_samples(out):
            data = json.loads(sample.record.model_dump_json())
            data.pop("provenance")  # times, and the stages' prompt hashes, differ
            found[sample.key] = (data, sample.images)
        return found

    with_split, without = records(tmp_path / "with"), records(tmp_path / "without")
    assert len(with_split) == COUNT and with_split == without
    assert all("step_images" not in data and "combined_instruction" not in data for data, _ in with_split.values())
