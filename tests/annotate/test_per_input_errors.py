"""One bad input never stops the job: the project's own per-input errors (codec, record validation,
input errors) raised inside a stage become reject rows with the stage and a reason, and the run goes on;
any other exception is a bug and still stops the run.

The real runner, decode tasks, stages and shard writer run on a small world set, answered by the world
oracle; the faults come from a replayed hostile answer or from a test stage standing for a stage bug.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from got_data.annotate.runner import PipelineRun, RunOptions
from got_data.annotate.stage import Stage
from got_data.engines.types import ModelResponse
from got_data.errors import CodecError, RecordError
from got_data.records.codec import find_special_tokens
from got_data.spec import StageSpec, load_spec
from got_data.world.oracle import OraclePool, WorldOracle, open_world_input
from got_data.world.sets import read_truth, write_world_set
from tests.annotate.outputs import outcome

INPUTS = 6
NESTED_TOKEN = "<|box_<|x|>start|>"  # one stripping pass leaves <|box_start|>


@pytest.fixture(scope="module")
def world_set(tmp_path_factory) -> Path:
    """The set's folder (`truth.jsonl` beside the pipeline input)."""
    root = tmp_path_factory.mktemp("per-input-errors") / "set"
    write_world_set(root, "t2i", INPUTS, seed=5)
    return root


def world_input(world_set: Path) -> Path:
    return next(p for p in world_set.iterdir() if p.name != "truth.jsonl")


def run_pipeline(spec, world_set: Path, out: Path, oracle: WorldOracle, pool=OraclePool, **options) -> dict:
    pools = {role: pool(role, oracle) for role in spec.roles()}
    options = RunOptions(out_dir=out, show_progress=False, **options)
    return PipelineRun(spec, open_world_input("t2i", world_input(world_set)), pools, options).run()


class HostileEchoOracle(WorldOracle):
    """Perfect answers, except that one input's description echoes a nested control token."""

    def __init__(self, truth: dict, target: str):
        super().__init__(truth)
        self.target = target

    def answer(self, context, images, json_schema):
        text = super().answer(context, images, json_schema)
        if context["stage"] == "recaption" and context["input_ref"] == self.target:
            answer = json.loads(text)
            answer["description"] = f"{answer['description']} {NESTED_TOKEN}(1,1),(2,2)"
            text = json.dumps(answer)
        return text


def test_a_hostile_echo_never_stops_the_run_nor_reaches_a_record(ray_session, world_set, tmp_path):
    truth = read_truth(world_set)
    target = sorted(truth)[2]
    run_pipeline(load_spec("t2i-world.yaml"), world_set, tmp_path / "out", HostileEchoOracle(truth, target))
    samples, rejects = outcome(tmp_path / "out")
    assert set(samples) | set(rejects) == set(truth) and len(samples) + len(rejects) == INPUTS
    # Stripped to a fixpoint before assembly, the echo no longer reassembles into a box token: the input
    # lands with the echo's plain text, and no record holds a token.
    assert target in samples and not rejects, rejects
    from got_data.shards.reader import iter_samples

    for sample in iter_samples(tmp_path / "out"):
        record = sample.record
        assert not find_special_tokens(record.description) and not find_special_tokens(record.prompt)
        if record.source.input_ref == target:
            assert "(1,1),(2,2)" in record.description, record.description


class FaultyStage(Stage):
    """Stands for a stage whose input-specific fault surfaces as one of the project's errors (or a bug).
    Defining it registers it as the stage `faulty`."""

    name = "faulty"
    role = None
    reads = ("record",)
    writes = ()
    faults: dict[str, BaseException] = {}

    async def run(self, work, models) -> None:
        fault = self.faults.get(work.item.input_ref)
        if fault is not None:
            raise fault


def spec_with_faulty_stage():
    spec = load_spec("t2i-world.yaml")
    return spec.model_copy(update={"stages": [*spec.stages, StageSpec(name="faulty")]})


def test_per_input_errors_become_reject_rows_and_the_run_goes_on(ray_session, world_set, tmp_path, monkeypatch):
    truth = read_truth(world_set)
    refs = sorted(truth)
    monkeypatch.setattr(FaultyStage, "faults", {refs[0]: CodecError("unclosed box at character 3"),
                                                 refs[3]: RecordError("record has no 'target' image")})
    stats = run_pipeline(spec_with_faulty_stage(), world_set, tmp_path / "out", WorldOracle(truth))
    samples, rejects = outcome(tmp_path / "out")
    assert rejects == {refs[0]: ("faulty", "codec_error"), refs[3]: ("faulty", "invalid_record")}
    assert set(samples) == set(refs) - {refs[0], refs[3]}
    assert stats["run"]["rejects_by_reason"] == {"faulty/codec_error": 1, "faulty/invalid_record": 1}

    # A rerun finds both inputs done: nothing is redone, nothing lands twice.
    stats = run_pipeline(spec_with_faulty_stage(), world_set, tmp_path / "out", WorldOracle(truth))
    assert stats["run"]["skipped_already_done"] == INPUTS and outcome(tmp_path / "out")[1] == rejects


def test_any_other_exception_is_a_bug_and_stops_the_run(ray_session, world_set, tmp_path, monkeypatch):
    truth = read_truth(world_set)
    monkeypatch.setattr(FaultyStage, "faults", {sorted(truth)[1]: KeyError("a bug in got-data")})
    with pytest.raises(KeyError, match="a bug in got-data"):
        run_pipeline(spec_with_faulty_stage(), world_set, tmp_path / "out", WorldOracle(truth))


class DeadPoolFor(OraclePool):
    """A pool whose engine fails every request about some inputs, as a pool whose actor died answers."""

    dead_for: set[str] = set()

    async def generate(self, request):
        if request.context.get("input_ref") in self.dead_for:
            return ModelResponse.failure(request.id, "actor died: the engine process exited", attempts=3)
        return await super().generate(request)


def test_a_rerun_retries_transient_rejects_and_chosen_reasons(ray_session, world_set, tmp_path, monkeypatch):
    truth = read_truth(world_set)
    refs = sorted(truth)
    out = tmp_path / "out"
    monkeypatch.setattr(FaultyStage, "faults", {refs[4]: CodecError("unclosed box at character 3")})
    monkeypatch.setattr(DeadPoolFor, "dead_for", {refs[1]})
    run_pipeline(spec_with_faulty_stage(), world_set, out, WorldOracle(truth), pool=DeadPoolFor)
    assert outcome(out)[1] == {refs[1]: ("recaption", "model_failure"), refs[4]: ("faulty", "codec_error")}
    table = pq.read_table(out / "rejects.parquet").to_pylist()
    assert {row["input_ref"]: row["transient"] for row in table} == {refs[1]: True, refs[4]: False}

    # The pool is back and the stage bug fixed: a plain rerun redoes only the transient reject.
    monkeypatch.setattr(DeadPoolFor, "dead_for", set())
    monkeypatch.setattr(FaultyStage, "faults", {})
    stats = run_pipeline(spec_with_faulty_stage(), world_set, out, WorldOracle(truth), pool=DeadPoolFor)
    samples, rejects = outcome(out)
    assert rejects == {refs[4]: ("faulty", "codec_error")} and refs[1] in samples
    assert stats["run"]["skipped_already_done"] == INPUTS - 1

    # Asked to, it redoes a final reason too; every input still lands exactly once.
    run_pipeline(spec_with_faulty_stage(), world_set, out, WorldOracle(truth), pool=DeadPoolFor,
                 retry_rejects=("codec_error",))
    samples, rejects = outcome(out)
    assert rejects == {} and set(samples) == set(refs)
