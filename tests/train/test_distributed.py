"""Ray Train (DDP over gloo, own local Ray on loopback): gradients equal one process's, a killed worker
resumes from the last checkpoint without counting a step twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from got_data.train.trainer import METRICS_FILE
from tests.train.conftest import tiny_config_dict, write_config

pytestmark = pytest.mark.own_ray

SCRIPT = Path(__file__).with_name("ddp_gradients.py")
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_two_workers_average_to_the_single_process_gradient(tiny_shards, tmp_path):
    config = tiny_config_dict(tiny_shards, tmp_path / "run", batch_size=2, global_batch=4)
    first_t2i = sorted(tiny_shards["t2i"].glob("*.tar"))[0]
    config["data"]["sources"][0]["shards"] = [str(first_t2i)]  # one shard for two streams: split by key
    config["data"]["workers"] = 0
    # LoRA dropout masks are drawn per rank and shaped by the padded batch: off for an exact comparison.
    config["model"]["mllm"]["lora"]["dropout"] = 0.0
    path = write_config(tmp_path / "train.yaml", config)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(path), str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    rank0, rank1 = result["rank_keys"]
    assert len(rank0) == len(rank1) == 2 and not set(rank0) & set(rank1)
    assert result["same_params"] and result["nonzero_params"] > 0.5 * result["params"]
    # float32 sums in another order (two half batches, padded differently): tolerance 1e-5 of the largest gradient
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["max_abs_grad"]), result


CURVE_STEPS = 8
CURVE_TOLERANCE = 1e-5  # relative, per logged step (float sums in another order, through AdamW; measured 6e-8)


def _losses(run: Path) -> list[tuple[float, float, float]]:
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, CURVE_STEPS + 1))
    return [(line["loss"], line["ce"], line["mse"]) for line in lines]


@pytest.mark.slow
def test_two_workers_track_the_single_process_loss_curve(tiny_shards, tmp_path):
    """The same global batch of 4 at every step: one process (2 DataLoader workers, batch 2 x grad_accum 2)
    reads streams 0 and 1 in turn, two Ray Train workers (batch 2 each) read stream 0 and 1 each: the same
    micro-batches, so the curves agree to float precision (LoRA dropout off: its masks are drawn per rank)."""
    curves = {}
    for workers, loader_workers in ((None, 2), (2, 0)):
        run = tmp_path / f"run-{workers or 1}"
        config = tiny_config_dict(tiny_shards, run, steps=CURVE_STEPS, batch_size=2, global_batch=4)
        config["data"]["workers"] = loader_workers
        config["model"]["mllm"]["lora"]["dropout"] = 0.0
        config["checkpoint"].update(every=CURVE_STEPS)
        path = write_config(tmp_path / f"train-{workers or 1}.yaml", config)
        command = [sys.executable, "-m", "got_data", "train", "--config", str(path)]
        proc = subprocess.run(command + (["--workers", str(workers)] if workers else []), capture_output=True,
                              text=True, timeout=300, env=_env(), cwd=REPO)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        curves[workers or 1] = _losses(run)
    single, two = curves[1], curves[2]
    print(single, two, sep="\n")
    assert len({round(loss, 3) for loss, _, _ in single}) > 1  # the loss moves: a curve, not a constant
    for step, (one, other) in enumerate(zip(single, two), start=1):
        for a, b in zip(one, other):
            assert abs(a - b) <= CURVE_TOLERANCE * max(1.0, abs(a)), (step, single, two)


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.Error:
        return []


def _ray_train_workers(processes: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for process in processes:
        try:
            if "RayTrainWorker" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_checkpoint(tiny_shards, tmp_path):
    steps = 12
    config = tiny_config_dict(tiny_shards, tmp_path / "run", steps=steps, batch_size=2, global_batch=4)
    config["data"]["workers"] = 0
    config["checkpoint"].update(every=4, keep=None)
    path = write_config(tmp_path / "train.yaml", config)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "got_data", "train", "--config", str(path), "--workers", "2", "--max-failures", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=REPO,
    )
    root = psutil.Process(proc.pid)
    started: dict[int, psutil.Process] = {}  # every process the job started, to stop any left over
    killed = None
    try:
        deadline = time.monotonic() + 240
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            started.update((p.pid, p) for p in _descendants(root))
            if (run / "step-00000004").is_dir():
                workers = _ray_train_workers(list(started.values()))
                if workers:
                    killed = workers[-1].pid
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.02)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        for process in started.values():
            try:
                process.kill()
            except psutil.Error:
                pass
    assert killed is not None, output[-3000:]
    assert proc.returncode == 0, output[-3000:]
    assert "resumed from" in output and "step-00000004" in output, output[-3000:]
    logged = [json.loads(line)["step"] for line in (run / METRICS_FILE).read_text().splitlines()]
    assert logged == list(range(1, steps + 1))  # every step once, none counted twice
    assert (run / f"step-{steps:08d}").is_dir()
