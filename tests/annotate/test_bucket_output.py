"""`--out s3://bucket/prefix` against a real S3 server (SeaweedFS on loopback): the real runner, decode
tasks, stages and shard writer, answered by the world oracle (instant answers: these tests are about
the storage path). Shards appear only whole, the journal and manifest list only committed shards,
a killed run resumes to the same keys, a store that goes away mid-run publishes nothing half-written."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from got_data import uri
from got_data.s3_server import start_s3_server
from got_data.shards.index import read_index
from got_data.shards.layout import index_location_for, list_shard_locations
from got_data.shards.reader import iter_samples
from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import read_truth, write_world_set

ROOT = Path(__file__).resolve().parents[2]
INPUTS = 12


@pytest.fixture(scope="module")
def world_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bucket-world")
    return write_world_set(folder / "set", "t2i", INPUTS, seed=5), read_truth(folder / "set")


def bucket_outcome(out: str) -> dict[str, list[str]]:
    """Shard name -> input refs of its samples, read back from the bucket."""
    return {tar.name: [s.record.source.input_ref for s in iter_samples(tar)] for tar in list_shard_locations(out)}


def all_keys(out: str) -> list[str]:
    """Every object under a prefix, relative to it."""
    base, keys, folders = uri.location(out), [], [uri.location(out)]
    while folders:
        for info in uri.list_dir(folders.pop()):
            rel = info.path[len(base.path) + 1:]
            if info.type == uri.FileType.Directory:
                folders.append(base.join(rel))
            else:
                keys.append(rel)
    return sorted(keys)


def test_annotate_into_a_bucket_commits_whole_shards_and_lists_them(ray_session, s3_bucket, world_set, tmp_path):
    path, truth = world_set
    out = f"{s3_bucket}/got"
    stats, _ = annotate_with_oracle(load_spec("t2i-world.yaml"), "t2i", path, truth, out, samples_per_shard=5)
    local_stats, _ = annotate_with_oracle(load_spec("t2i-world.yaml"), "t2i", path, truth, tmp_path / "local",
                                          samples_per_shard=5)
    assert stats["totals"]["samples"] == local_stats["totals"]["samples"] == INPUTS
    local_files = sorted(p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local").rglob("*")
                         if p.is_file())
    assert all_keys(out) == local_files  # the same files, no partial or staged name among them
    assert {"manifest.json", "rejects.parquet", "stats.json", "_state/shards.jsonl", "got-000001.tar"} <= set(local_files)
    shards = bucket_outcome(out)
    refs = [ref for refs in shards.values() for ref in refs]
    assert sorted(refs) == sorted(truth) and len(set(refs)) == INPUTS
    assert sorted(shards) == sorted(p.name for p in (tmp_path / "local").glob("got-*.tar"))
    manifest = json.loads(uri.read_text(f"{out}/manifest.json"))
    assert manifest["total_samples"] == INPUTS
    for entry in manifest["shards"]:
        data = uri.read_bytes(f"{out}/{entry['file']}")
        assert (entry["sha256"], entry["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
    for tar in list_shard_locations(out):
        assert {row.key for row in read_index(index_location_for(tar))} == {
            s.record.key for s in iter_samples(tar)}
    journal = [json.loads(line) for line in uri.read_text(f"{out}/_state/shards.jsonl").splitlines()]
    assert sorted(row["index"] for row in journal) == list(range(len(shards)))
    assert json.loads(uri.read_text(f"{out}/stats.json"))["totals"]["samples"] == INPUTS


# A bucket job in its own process (its own local Ray), so that it can be killed as a whole.
JOB = """
import sys
from got_data.annotate.launch import init_ray
from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import read_truth
images, truth, out = sys.argv[1:4]
init_ray(None, 2)
annotate_with_oracle(load_spec("t2i-world.yaml"), "t2i", images, read_truth(truth), out,
                     samples_per_shard=2, max_images_in_flight=1)
"""
SLOW_INPUTS = 60  # 30 commits of 2 samples: long enough to be caught mid-run


def start_job(images: Path, out: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, str(images), str(images.parent), out], cwd=ROOT,
                            env={**os.environ, **(env or {})}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_first_shard(proc: subprocess.Popen, out: str) -> None:
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not list_shard_locations(out):
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before its first shard was committed"


def check_committed_state(out: str) -> set[str]:
    """Whatever a killed run left: every tar whole (read to its end) with its index, the journal
    naming only committed tars, no manifest. Returns the refs in committed shards."""
    shards = bucket_outcome(out)  # reads every tar to its end: a partial object would fail here
    for tar in list_shard_locations(out):
        assert uri.is_file(index_location_for(tar))
    # The journal is published after its tar: a stop between the two leaves a tar the journal does not
    # name yet (a rerun's `reconcile` reads it back), or no journal at all after the first commit.
    journal_key = f"{out}/_state/shards.jsonl"
    lines = uri.read_text(journal_key).splitlines() if uri.exists(journal_key) else []
    journal = [json.loads(line) for line in lines]
    assert {f"got-{row['index']:06d}.tar" for row in journal} <= set(shards)
    assert not uri.exists(f"{out}/manifest.json")
    return {ref for refs in shards.values() for ref in refs}


def check_finished(out: str, truth_refs: set[str]) -> None:
    shards = bucket_outcome(out)
    refs = [ref for refs in shards.values() for ref in refs]
    assert sorted(refs) == sorted(truth_refs), "every input exactly once"
    assert sorted(shards) == [f"got-{i:06d}.tar" for i in range(len(shards))]
    assert json.loads(uri.read_text(f"{out}/manifest.json"))["total_samples"] == len(truth_refs)


@pytest.mark.own_ray
def test_a_killed_bucket_run_resumes_to_the_same_keys(s3_bucket, tmp_path):
    images = write_world_set(tmp_path / "set", "t2i", SLOW_INPUTS, seed=8)
    out = f"{s3_bucket}/got"
    proc = start_job(images, out)
    wait_for_first_shard(proc, out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = check_committed_state(out)
    assert 0 < len(done) < SLOW_INPUTS
    rerun = start_job(images, out)
    assert rerun.wait(300) == 0, rerun.stderr.read().decode()[-2000:]
    check_finished(out, set(read_truth(tmp_path / "set")))


@pytest.mark.own_ray
def test_a_store_that_goes_away_mid_run_fails_in_one_line_and_publishes_nothing_half_written(tmp_path):
    server = start_s3_server(tmp_path / "weed")
    port = int(server.endpoint.rsplit(":", 1)[1])
    env = {"AWS_ENDPOINT_URL": server.endpoint}
    try:
        server.create_bucket("away")
        images = write_world_set(tmp_path / "set", "t2i", SLOW_INPUTS, seed=9)
        proc = start_job(images, "s3://away/got", env)
        os.environ["AWS_ENDPOINT_URL"], saved = server.endpoint, os.environ["AWS_ENDPOINT_URL"]
        uri.reset_filesystems()
        try:
            wait_for_first_shard(proc, "s3://away/got")
            os.killpg(server.process.pid, signal.SIGKILL)  # the store stops answering mid-run
            server.process.wait()
            assert proc.wait(180) != 0
            last = proc.stderr.read().decode().strip().splitlines()[-1]
            assert last.startswith("got_data.uri.StorageError: s3://away/got/") and server.secret_key not in last
            server = start_s3_server(tmp_path / "weed", s3_port=port)  # the same data, back up
            check_committed_state("s3://away/got")
        finally:
            os.environ["AWS_ENDPOINT_URL"] = saved
            uri.reset_filesystems()
    finally:
        server.stop()


def upload_tree(folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            uri.upload(path, f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_an_image_folder_in_a_bucket_is_read_like_a_local_one(ray_session, s3_bucket, world_set, tmp_path):
    from got_data.ingest import open_source

    path, truth = world_set
    images = tmp_path / "images"
    images.mkdir()
    for image in sorted(path.iterdir())[:6]:
        (images / image.name).write_bytes(image.read_bytes())
    (images / "nested").mkdir()
    nested = sorted(path.iterdir())[6]
    (images / "nested" / nested.name).write_bytes(nested.read_bytes())
    first = min(images.glob("*.png"))
    first.with_suffix(".txt").write_text("a caption from the bucket\n", encoding="utf-8")
    (images / ".hidden.png").write_bytes(first.read_bytes())
    upload_tree(images, f"{s3_bucket}/images")

    local, bucket = list(open_source(images)), list(open_source(f"{s3_bucket}/images"))
    assert [(i.input_ref, i.caption) for i in bucket] == [(i.input_ref, i.caption) for i in local]
    assert [i.image.read() for i in bucket] == [i.image.read() for i in local]
    assert open_source(f"{s3_bucket}/images").dataset == "images"

    out = f"{s3_bucket}/got"
    stats, _ = annotate_with_oracle(load_spec("t2i-world.yaml"), "t2i", f"{s3_bucket}/images",
                                    {**truth, f"nested/{nested.name}": truth[nested.name]}, out)
    assert stats["totals"]["samples"] == 7
    assert sorted(ref for refs in bucket_outcome(out).values() for ref in refs) == sorted(i.input_ref for i in local)


def test_an_edit_manifest_in_a_bucket_is_annotated_from_its_objects(ray_session, s3_bucket, tmp_path):
    """The manifest and the images it names (relative to its prefix) are read from the bucket, the
    images by the decode tasks: every pair lands once, as from a local copy."""
    folder = tmp_path / "edit-set"
    manifest = write_world_set(folder, "edit", 6, seed=7)
    truth = read_truth(folder)
    upload_tree(folder, f"{s3_bucket}/edits")
    out = tmp_path / "out"
    stats, _ = annotate_with_oracle(load_spec("edit-world.yaml"), "edit", f"{s3_bucket}/edits/{manifest.name}",
                                    truth, out)
    assert stats["totals"]["samples"] == 6
    assert sorted(s.record.source.input_ref for s in iter_samples(out)) == sorted(truth)


def test_a_bucket_that_refuses_access_is_one_line_before_any_work(s3_bucket, world_set, tmp_path):
    path, _ = world_set
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-secret-for-this-test"}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "got_data", "annotate", "t2i", str(path), "--out",
                             f"{s3_bucket}/got", "--config", "t2i-world.yaml"], check=False, cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2  # the CLI's exit status for a got-data error
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and f"{s3_bucket}/got" in lines[0], lines
    assert "access denied" in lines[0] or "secret key does not match" in lines[0], lines
    assert "wrong-secret-for-this-test" not in result.stdout + result.stderr
    assert "Ray" not in result.stdout + result.stderr and time.monotonic() - started < 60
    assert not uri.list_dir(f"{s3_bucket}/got")


def test_validate_reads_shards_in_a_bucket(ray_session, s3_bucket, world_set):
    from got_data.shards.validate import validate_paths

    path, truth = world_set
    out = f"{s3_bucket}/got"
    annotate_with_oracle(load_spec("t2i-world.yaml"), "t2i", path, truth, out, samples_per_shard=6)
    report = validate_paths([out])
    assert report.ok and (report.shards, report.valid) == (len(list_shard_locations(out)), INPUTS)
    assert validate_paths([f"{out}/got-000001.tar"]).ok
    result = subprocess.run([sys.executable, "-m", "got_data", "validate", out], cwd=ROOT, env=os.environ,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    whole = uri.read_bytes(f"{out}/got-000001.tar")
    uri.write_bytes(f"{out}/got-000001.tar", whole[: len(whole) // 2])  # a shard cut short behind our back
    broken = validate_paths([out])
    assert not broken.ok and {i.kind for i in broken.issues} >= {"tar_truncated"}
    assert any(i.path == f"{out}/got-000001.tar" for i in broken.issues)


def test_a_start_that_fails_leaves_no_staging_folder(s3_bucket):
    from got_data.annotate.output import OutputFolder
    from got_data.annotate.runner import PipelineRun, RunOptions
    from got_data.errors import ShardError
    from got_data.world.oracle import OraclePool, WorldOracle

    out = f"{s3_bucket}/got"
    uri.write_text(f"{out}/_state/shards.jsonl", json.dumps({"index": 0, "inputs": ["a.png"]}) + "\n")
    uri.write_bytes(f"{out}/got-000000.tar", b"not a tar")  # journaled, but not a shard: the start fails
    spec = load_spec("t2i-world.yaml")
    pools = {role: OraclePool(role, WorldOracle({})) for role in spec.roles()}
    staging = OutputFolder(out).staging
    with pytest.raises(ShardError):
        PipelineRun(spec, [], pools, RunOptions(out_dir=out, show_progress=False))
    assert not staging.exists()
