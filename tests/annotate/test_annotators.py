"""Many annotators: the real runner in annotator actors over partitions of a world set, answered by the
world oracle (each annotator has its copy), decode tasks on Ray, shards, journals and the driver's
merge. A kill is a real one: the source makes every annotator's process exit hard (`os._exit`, what
SIGKILL leaves) when its listing reaches a chosen position, while shards are being written."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import ray

from got_data.annotate.annotators import AnnotatorsRun
from got_data.annotate.runner import PipelineRun, RunOptions
from got_data.shards.layout import list_shards, parse_shard_name
from got_data.shards.manifest import read_manifest
from got_data.shards.validate import validate_paths
from got_data.spec import load_spec
from got_data.world.oracle import OraclePool, WorldOracle, open_world_input
from got_data.world.sets import read_truth, write_world_set
from tests.annotate.outputs import outcome

pytestmark = pytest.mark.engine  # starts Ray actors

INPUTS = 12  # world scenes, plus one empty file (a reject)
PER_SHARD = 2


class DieAt:
    """A source whose reader's process exits hard when the listing reaches position `at`."""

    def __init__(self, source, at: int) -> None:
        self.source, self.at = source, at
        self.dataset, self.location = source.dataset, source.location

    def __iter__(self):
        for n, item in enumerate(self.source):
            if n == self.at:
                os._exit(9)
            yield item


class DieAtInRows(DieAt):
    """`DieAt` over a folder, kept narrowable to an annotator's range (`of_range`), in which `at`
    counts from the range's start."""

    def count(self):
        return self.source.count()

    def of_range(self, start, stop):
        return DieAtInRows(self.source.of_range(start, stop), self.at)


@pytest.fixture(scope="module")
def world(ray_session, tmp_path_factory):
    work = tmp_path_factory.mktemp("annotators")
    images = write_world_set(work / "set", "t2i", INPUTS, seed=11)
    (images / "zz-empty.png").write_bytes(b"")
    return load_spec("t2i-world.yaml"), read_truth(work / "set"), images


def _pools(spec, truth):
    vlm = spec.models["vlm"]
    oracle = WorldOracle(truth, pixel_bounds=(vlm.min_pixels, vlm.max_pixels))
    return {role: OraclePool(role, oracle) for role in spec.roles()}


def _run(world, out: Path, annotators: int | None, die_at: int | None = None, dying: type = DieAtInRows) -> dict:
    """`annotators` actors (None: the single driver, in this process); `world`'s input is a folder
    (split by ranges) or tars (then `dying=DieAtInShards`, which annotators can narrow to their tars)."""
    spec, truth, inputs = world
    source = open_world_input("t2i", inputs)
    if die_at is not None:
        source = dying(source, die_at)
    options = RunOptions(out_dir=out, show_progress=False, samples_per_shard=PER_SHARD, max_images_in_flight=1)
    if annotators is None:
        return PipelineRun(spec, source, _pools(spec, truth), options).run()
    return AnnotatorsRun(spec, source, _pools(spec, truth), options, annotators).run()


def _all_refs(world) -> set[str]:
    return {item.input_ref for item in open_world_input("t2i", world[2])}


def _assert_exactly_once(world, out: Path) -> tuple[dict, dict]:
    samples, rejects = outcome(out)  # fails on an input written twice or both written and rejected
    assert set(samples) | set(rejects) == _all_refs(world)
    assert rejects == {"zz-empty.png": ("decode", "empty_file")}
    assert validate_paths([out]).ok
    manifest = read_manifest(out / "manifest.json")
    assert manifest["total_samples"] == len(samples) == INPUTS
    assert {s["file"] for s in manifest["shards"]} == {p.name for p in list_shards(out)}
    return samples, rejects


def test_two_annotators_split_the_input_and_the_driver_merges(world, tmp_path):
    out = tmp_path / "out"
    stats = _run(world, out, 2)
    _assert_exactly_once(world, out)
    names = Counter(parse_shard_name(p.name)[0] for p in list_shards(out))
    assert set(names) == {"got-p000", "got-p001"}  # no shard under the single driver's name, none shared
    wids = json.loads((out / "wids.json").read_text())
    assert sorted(s["url"] for s in wids["shardlist"]) == sorted(p.name for p in list_shards(out))
    assert f"samples: {INPUTS} in {len(list_shards(out))} shard(s)" in (out / "README.md").read_text()  # card: all
    for label in ("p000", "p001"):
        assert (out / "_state" / label / "shards.jsonl").is_file() and (out / "_state" / label / "stats.json").is_file()
    a, b = stats["annotators"]
    assert (a["partition"], b["partition"]) == ("p000", "p001") and a["pid"] != b["pid"] != os.getpid()
    assert a["cpu_s"] > 0 and b["cpu_s"] > 0
    assert 0 < a["start_cpu_s"] < a["cpu_s"] and 0 < b["start_cpu_s"] < b["cpu_s"]
    assert a["work"]["records"] + b["work"]["records"] == stats["run"]["records"] == INPUTS
    assert (a["work"]["inputs_seen"], b["work"]["inputs_seen"]) == (6, 7)  # ranges: positions 0-5 and 6-12
    listing = [item.input_ref for item in open_world_input("t2i", world[2])]
    assert _written_by(out, "p000") == set(listing[:6]) and _written_by(out, "p001") == set(listing[6:-1])
    assert stats["totals"]["samples"] == INPUTS and stats["totals"]["rejects"] == 1
    assert stats["totals"]["rejects_by_reason"] == {"decode/empty_file": 1}
    assert stats["dataset"]["records"] == INPUTS
    assert stats["run"]["stages"]["assemble"]["passed"] == INPUTS
    assert stats["run"]["objects_per_record"] > 0 and stats["run"]["boxes_per_record"] >= stats["run"]["objects_per_record"]


def _written_by(out: Path, partition: str) -> set[str]:
    """The inputs a partition's output shards hold."""
    from got_data.shards.reader import iter_samples

    tars = [p for p in list_shards(out) if parse_shard_name(p.name)[0] == f"got-{partition}"]
    return {s.record.source.input_ref for s in iter_samples(tars)} if tars else set()


def test_a_split_run_shows_and_writes_what_a_single_run_does(world, tmp_path):
    """The driver's progress line carries the run's records/s and each pool's, summed over the
    annotators; its stats.json has a single run's top-level figures, the annotators' beside them."""
    import io
    import re

    from rich.console import Console

    spec, truth, images = world
    screen = io.StringIO()
    options = RunOptions(out_dir=tmp_path / "split", samples_per_shard=PER_SHARD, max_images_in_flight=1,
                         console=Console(file=screen, width=240, force_terminal=False))
    AnnotatorsRun(spec, open_world_input("t2i", images), _pools(spec, truth), options, 2).run()
    last = [line for line in screen.getvalue().splitlines() if "rec/s" in line][-1]
    assert "(2 annotators)" in last and f"{INPUTS + 1}/{INPUTS + 1}" in last, last
    assert f"{INPUTS} records, 1 rejects" in last and "rec/s (llm " in last and ", vlm " in last, last
    rates = [float(x) for x in re.findall(r"([\d.]+) ?(?:rec)?/s", last)]
    assert len(rates) == 3 and all(rate > 0 for rate in rates), last
    split = json.loads((tmp_path / "split" / "stats.json").read_text())
    single = _run(world, tmp_path / "single", None)
    assert set(split) == set(single) | {"annotators"}
    for part in ("run", "totals", "dataset"):
        assert set(split[part]) == set(single[part]), part
    run = split["run"]
    assert run["records_per_s"] > 0 and set(run["records_per_s_by_role"]) == {"vlm", "llm"}
    assert all(rate > 0 for rate in run["records_per_s_by_role"].values())
    for key in ("inputs_seen", "records", "rejects", "stages", "rejects_by_reason", "tokens_per_stage",
                "objects_per_record", "boxes_per_record"):
        assert run[key] == single["run"][key], key
    assert set(run["latency_s"]) == set(single["run"]["latency_s"])
    for key in ("samples", "rejects", "rejects_by_reason"):
        assert split["totals"][key] == single["totals"][key], key
    assert split["dataset"]["records"] == single["dataset"]["records"] == INPUTS
    assert split["dataset"]["boxes_per_record"] == single["dataset"]["boxes_per_record"]
    assert sum(a["work"]["records"] for a in split["annotators"]) == run["records"]


@pytest.fixture(scope="module")
def killed(world, tmp_path_factory):
    """A 2-annotator run whose processes died when each reached the 5th input of its range."""
    out = tmp_path_factory.mktemp("killed") / "out"
    with pytest.raises(ray.exceptions.RayActorError):
        _run(world, out, 2, die_at=4)
    return out


def _began_an_attempt(log: Path) -> bool:
    """Whether an annotator's stats log holds an attempt (the file may exist before one begins)."""
    return log.is_file() and any(json.loads(line).get("type") == "attempt" for line in log.read_text().splitlines()
                                 if line.strip())


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_killed_run_resumes_each_partition(world, killed, tmp_path):
    out = _copy(killed, tmp_path / "out")
    before, landed = {p.name for p in list_shards(out)}, _assert_partial(out)
    assert before and len(landed) < INPUTS  # killed part way
    stats = _run(world, out, 2)
    _assert_exactly_once(world, out)
    assert before <= {p.name for p in list_shards(out)}  # finished shards kept, never rewritten
    done_before = sum(a["work"]["skipped_already_done"] for a in stats["annotators"])
    assert done_before == len(landed) == stats["run"]["skipped_already_done"]
    # An annotator the kill caught running shows that attempt interrupted (one whose actor had not
    # started yet when the other's death stopped the run has only this one).
    started = [label for label in ("p000", "p001") if _began_an_attempt(killed / "_state" / label / "stats.jsonl")]
    assert started
    for label in started:
        log = [json.loads(line) for line in (out / "_state" / label / "stats.jsonl").read_text().splitlines()]
        assert [row["status"] for row in log if row["type"] == "end"] == ["interrupted", "finished"]


def test_a_rerun_with_another_split_lands_every_input_once(world, killed, tmp_path):
    out = _copy(killed, tmp_path / "out")
    stats = _run(world, out, 3)
    samples, _ = _assert_exactly_once(world, out)
    assert {parse_shard_name(p.name)[0] for p in list_shards(out)} >= {"got-p000", "got-p001", "got-p002"}
    assert stats["totals"]["samples"] == len(samples) and stats["dataset"]["records"] == INPUTS
    again = _run(world, out, None)  # the single driver sees everything done by the annotators
    assert again["run"]["skipped_already_done"] == INPUTS + 1 and again["run"]["records"] == 0
    assert again["totals"]["samples"] == INPUTS and again["dataset"]["records"] == INPUTS
    _assert_exactly_once(world, out)


TAR_SIZES = (5, 1, 4, 2)  # scenes per input tar: by tar, p000 of 2 reads 9 inputs and p001 3 (round robin: 6 each)


class DieAtInShards(DieAt):
    """`DieAt` over a shard source, kept narrowable to an annotator's tars (`of_shards`)."""

    @property
    def shards(self):
        return self.source.shards

    def of_shards(self, positions):
        return DieAtInShards(self.source.of_shards(positions), self.at)


@pytest.fixture(scope="module")
def tar_world(ray_session, tmp_path_factory):
    """A world set packed into img2dataset-style input tars of unequal sizes, truth keyed by `TAR#KEY`."""
    from tests.ingest.conftest import write_shard

    work = tmp_path_factory.mktemp("tar-annotators")
    images = write_world_set(work / "set", "t2i", sum(TAR_SIZES), seed=12)
    truth, names = read_truth(work / "set"), sorted(p.name for p in images.iterdir())
    tar_truth, start = {}, 0
    for n, size in enumerate(TAR_SIZES):
        tar = f"{n:05d}.tar"
        part = names[start:start + size]
        write_shard(work / "tars" / tar, [(Path(name).stem, {"png": (images / name).read_bytes()}) for name in part])
        tar_truth.update({f"{tar}#{Path(name).stem}": truth[name] for name in part})
        start += size
    return load_spec("t2i-world.yaml"), tar_truth, work / "tars"


def _assert_tars_landed_once(tar_world, out: Path) -> dict:
    samples, rejects = outcome(out)
    assert not rejects and set(samples) == set(tar_world[1])
    assert validate_paths([out]).ok
    assert read_manifest(out / "manifest.json")["total_samples"] == sum(TAR_SIZES)
    return samples


def _tars_written_by(out: Path, partition: str) -> set[str]:
    """The input tars whose samples a partition's output shards hold."""
    return {ref.split("#")[0] for ref in _written_by(out, partition)}


def test_annotators_read_only_their_own_input_tars(tar_world, tmp_path):
    out = tmp_path / "out"
    stats = _run(tar_world, out, 2, dying=DieAtInShards)
    _assert_tars_landed_once(tar_world, out)
    a, b = stats["annotators"]
    assert (a["work"]["inputs_seen"], b["work"]["inputs_seen"]) == (9, 3)  # listed only their tars' samples
    assert (a["input_shards"], b["input_shards"]) == (2, 2)
    assert _tars_written_by(out, "p000") == {"00000.tar", "00002.tar"}
    assert _tars_written_by(out, "p001") == {"00001.tar", "00003.tar"}


def test_a_killed_tar_split_resumes_with_other_counts(tar_world, tmp_path):
    """Killed part way (p000 dies at its 4th input), then rerun over 3 annotators (other tars each),
    then by the single driver: every input lands once, the journals keyed by input, not by tar."""
    out = tmp_path / "out"
    with pytest.raises(ray.exceptions.RayActorError):
        _run(tar_world, out, 2, die_at=3, dying=DieAtInShards)
    before, landed = {p.name for p in list_shards(out)}, _assert_partial(out)
    assert before and len(landed) < sum(TAR_SIZES)
    stats = _run(tar_world, out, 3, dying=DieAtInShards)
    _assert_tars_landed_once(tar_world, out)
    assert before <= {p.name for p in list_shards(out)}
    assert [a["input_shards"] for a in stats["annotators"]] == [2, 1, 1]
    assert stats["run"]["skipped_already_done"] == len(landed) and stats["totals"]["samples"] == sum(TAR_SIZES)
    again = _run(tar_world, out, None, dying=DieAtInShards)
    assert again["run"]["skipped_already_done"] == sum(TAR_SIZES) and again["run"]["records"] == 0
    _assert_tars_landed_once(tar_world, out)


def _assert_partial(out: Path) -> set[str]:
    """The inputs a killed run's finished shards hold, each once."""
    from got_data.shards.reader import iter_samples

    refs = [s.record.source.input_ref for s in iter_samples(list_shards(out))]
    assert len(refs) == len(set(refs))
    return set(refs)


@pytest.fixture(scope="module")
def manifest_world(ray_session, tmp_path_factory):
    """The world scenes as rows of a Parquet manifest in row groups of 3, truth keyed by `m.parquet#row=N`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    work = tmp_path_factory.mktemp("manifest-annotators")
    images = write_world_set(work / "set", "t2i", 10, seed=13)
    truth, names = read_truth(work / "set"), sorted(p.name for p in images.iterdir())
    pq.write_table(pa.table({"image": [f"images/{name}" for name in names]}), work / "set" / "m.parquet",
                   row_group_size=3)
    rows = {f"m.parquet#row={n}": truth[name] for n, name in enumerate(names)}
    return load_spec("t2i-world.yaml"), rows, work / "set" / "m.parquet"


def test_manifest_ranges_land_once_across_annotator_counts(manifest_world, tmp_path):
    """Two annotators, each on one contiguous range of the manifest's rows, killed at the 4th row of
    their ranges; a rerun over three (other ranges), then the single driver: every row lands once."""
    out = tmp_path / "out"
    with pytest.raises(ray.exceptions.RayActorError):
        _run(manifest_world, out, 2, die_at=3)
    landed = _assert_partial(out)
    assert landed and landed <= {f"m.parquet#row={n}" for n in (0, 1, 2, 5, 6, 7)}  # the ranges' first rows
    stats = _run(manifest_world, out, 3)
    samples, rejects = outcome(out)
    assert not rejects and set(samples) == set(manifest_world[1]) and validate_paths([out]).ok
    assert [a["work"]["inputs_seen"] for a in stats["annotators"]] == [3, 3, 4]  # rows 0-2, 3-5, 6-9
    assert stats["run"]["skipped_already_done"] == len(landed)
    assert _written_by(out, "p002") == {f"m.parquet#row={n}" for n in range(6, 10)} - landed
    again = _run(manifest_world, out, None)
    assert again["run"]["skipped_already_done"] == 10 and again["run"]["records"] == 0
    assert again["totals"]["samples"] == 10 and outcome(out)[0].keys() == samples.keys()


def test_two_annotators_write_into_a_bucket(world, s3_bucket):
    """`--out s3://...`: each annotator stages and commits its own shards and journal objects."""
    from got_data import uri
    from got_data.shards.layout import list_shard_locations
    from got_data.shards.reader import iter_samples

    out = f"{s3_bucket}/got"
    stats = _run(world, out, 2)
    tars = list_shard_locations(out)
    assert {parse_shard_name(t.name)[0] for t in tars} == {"got-p000", "got-p001"}
    refs = [s.record.source.input_ref for s in iter_samples(tars)]
    assert len(refs) == len(set(refs)) == INPUTS and set(refs) == _all_refs(world) - {"zz-empty.png"}
    assert validate_paths([out]).ok
    manifest = json.loads(uri.read_text(uri.location(out).join("manifest.json")))
    assert manifest["total_samples"] == INPUTS and len(manifest["shards"]) == len(tars)
    for label in ("p000", "p001"):
        assert uri.is_file(uri.location(out).join("_state", label, "shards.jsonl"))
    assert stats["totals"]["rejects"] == 1 and uri.is_file(uri.location(out).join("rejects.parquet"))


def test_two_annotators_send_their_requests_to_the_shared_engines(vlm_pool, llm_pool, tmp_path):
    """The tiny vLLM pools, started once in this process, serve annotators in other processes
    through their handles (`PoolHandle.open`): every request answered by the engines themselves."""
    import shutil

    from rich.console import Console

    from got_data.annotate.launch import ModelChoice, annotate
    from got_data.ingest import open_source
    from got_data.sample_data import sample_images_dir

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for photo in ("astronaut", "coffee", "rocket", "cat"):
        shutil.copy(sample_images_dir() / f"{photo}.jpg", inputs / f"{photo}.jpg")
    out = tmp_path / "out"
    options = RunOptions(out_dir=out, samples_per_shard=2, show_progress=False, console=Console(quiet=True),
                         annotators=2)
    stats = annotate(load_spec(load_spec("t2i-tiny.yaml").source), open_source(str(inputs)), options, ModelChoice(),
                     pools={"vlm": vlm_pool, "llm": llm_pool})
    samples, rejects = outcome(out)
    assert set(samples) | set(rejects) == {f"{p}.jpg" for p in ("astronaut", "coffee", "rocket", "cat")}
    assert not [r for r in rejects.values() if r[1] == "model_failure"], rejects
    assert [a["partition"] for a in stats["annotators"]] == ["p000", "p001"]
    recaption = stats["run"]["tokens_per_stage"]["recaption"]
    assert recaption["requests"] >= 4 and recaption["prompt_tokens"] > 0  # answered by vLLM, not a stand-in
    assert vlm_pool.actors() and llm_pool.actors()  # the owner's engines still serve after the annotators closed


def test_an_engine_killed_mid_run_is_replaced_and_the_annotators_use_the_replacement(vlm_pool, llm_pool, tmp_path):
    """The LLM engine is killed while two annotators send it requests: the owning pool (this process,
    which sends none itself) replaces it, the annotators' requests wait for and go to the replacement,
    every input lands exactly once with no model_failure, and the pool is back at full size."""
    import shutil
    import threading
    import time

    from rich.console import Console

    from got_data.annotate.launch import ModelChoice, annotate
    from got_data.ingest import open_source
    from got_data.sample_data import sample_images_dir

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    photos = ("astronaut", "coffee", "rocket", "cat")
    for n in range(12):
        shutil.copy(sample_images_dir() / f"{photos[n % 4]}.jpg", inputs / f"{n:02d}-{photos[n % 4]}.jpg")
    [before] = llm_pool.stats()["actors"]
    [victim] = llm_pool.actors()
    served_before = ray.get(victim.metrics.remote(), timeout=30)["served"]  # earlier tests' requests
    killed: dict = {}

    def kill_when_serving() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if ray.get(victim.metrics.remote(), timeout=30)["served"] >= served_before + 2:
                ray.kill(victim, no_restart=True)
                killed["served"] = True
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_serving)
    killer.start()
    options = RunOptions(out_dir=tmp_path / "out", samples_per_shard=2, show_progress=False,
                         console=Console(quiet=True), annotators=2)
    try:
        annotate(load_spec(load_spec("t2i-tiny.yaml").source), open_source(str(inputs)), options, ModelChoice(),
                 pools={"vlm": vlm_pool, "llm": llm_pool})
    finally:
        killer.join(timeout=330)
    assert killed, "the run ended before the engine served two requests"
    samples, rejects = outcome(tmp_path / "out")
    assert set(samples) | set(rejects) == {p.name for p in inputs.iterdir()}
    assert not [r for r in rejects.values() if r[1] == "model_failure"], rejects
    [after] = llm_pool.stats()["actors"]
    assert after["live"] and after["restarts"] == before["restarts"] + 1 and after["pid"] != before["pid"]
    assert len(llm_pool.actors()) == llm_pool.config.size_bounds()[0]  # back at full size
    [replacement] = llm_pool.actors()
    assert ray.get(replacement.metrics.remote(), timeout=30)["served"] > 0  # the annotators' requests reached it
