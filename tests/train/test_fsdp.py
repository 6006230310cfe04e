"""FSDP2 under Ray Train (gloo, own local Ray on loopback): two sharded workers step like one process on the
same global batch and score the same held-out loss, every rank writes its shard, the job consolidates the
last checkpoint into weights generate draws from, and a sharded checkpoint resumes exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from got_data.cli.train import generate, train
from got_data.errors import InputError, SpecError
from got_data.train.checkpoint import (
    CONSOLIDATED_DIR,
    SHARDED_DIR,
    STATE_FILE,
    CheckpointError,
    load_training_state,
    load_weights,
)
from got_data.train.config import config_from_dict, load_config
from got_data.train.trainer import METRICS_FILE, VALIDATION_FILE, Trainer
from tests.train.conftest import tiny_config_dict, write_config

REPO = Path(__file__).resolve().parents[2]
STEPS = 2
WEIGHT_FILES = ("unet/diffusion_pytorch_model.safetensors", "projectors.safetensors", "mllm_lora/adapter_model.safetensors")
# float32 sums in another order (sharded reduce-scatter, two half batches): measured 1.2e-7 on the weights, 0 on the loss
TOLERANCE = 1e-5


def _config(tiny_shards, run: Path, parallelism: str, loader_workers: int) -> dict:
    """Global batch 4 per step: one process reads loader streams 0 and 1 in turn (batch 2 x grad_accum 2), two
    workers read stream 0 and 1 each (batch 2): the same micro-batches (as in test_distributed.py)."""
    config = tiny_config_dict(tiny_shards, run, steps=STEPS, batch_size=2, global_batch=4, parallelism=parallelism)
    config["data"]["workers"] = loader_workers
    config["model"]["mllm"]["lora"]["dropout"] = 0.0  # its masks are drawn per rank
    config["checkpoint"].update(every=1, keep=None)
    config["validation"] = {"shards": [str(tiny_shards["edit"])], "samples": 4, "every": 1, "batch_size": 2}
    return config


def _train_fsdp(config_path: Path) -> str:
    command = [sys.executable, "-m", "got_data", "train", "--config", str(config_path), "--workers", "2"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, STEPS + 1))
    return [line["loss"] for line in lines]


def _validation(run: Path) -> list[list[float]]:
    rows = (run / VALIDATION_FILE).read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == [str(step) for step in range(1, STEPS + 1)]
    return [[float(x) for x in row.split(",")[1:]] for row in rows]


def _max_weight_diff(full: Path, consolidated: Path) -> float:
    worst = 0.0
    for name in WEIGHT_FILES:
        ours, theirs = load_file(full / name), load_file(consolidated / name)
        assert ours.keys() == theirs.keys(), name
        worst = max(worst, *((ours[k] - theirs[k]).abs().max().item() for k in ours))
    return worst


@pytest.mark.own_ray
@pytest.mark.slow
def test_fsdp_workers_match_one_process_resume_exactly_and_consolidate_for_generate(tiny_shards, tmp_path):
    single_run, fsdp_run = tmp_path / "single", tmp_path / "fsdp"
    Trainer(load_config(write_config(tmp_path / "single.yaml", _config(tiny_shards, single_run, "ddp", 2))), log=lambda _: None).run()
    fsdp_config = write_config(tmp_path / "fsdp.yaml", _config(tiny_shards, fsdp_run, "fsdp", 0))
    _train_fsdp(fsdp_config)

    last = fsdp_run / f"step-{STEPS:08d}"
    shards = sorted((last / SHARDED_DIR).iterdir())
    assert [p.suffix for p in shards] == [".safetensors"] * 2  # one per rank, no pickled metadata
    assert not list(fsdp_run.glob(".*partial"))
    assert load_training_state(last).step == STEPS  # weights_only=True
    single_losses, fsdp_losses = _losses(single_run), _losses(fsdp_run)
    print(single_losses, fsdp_losses)
    for a, b in zip(single_losses, fsdp_losses):  # step 2's loss is computed with the weights step 1 updated
        assert abs(a - b) <= TOLERANCE * max(1.0, abs(a)), (single_losses, fsdp_losses)
    # every FSDP rank runs the held-out forward (it gathers the units), rank 0 writes it
    for ours, theirs in zip(_validation(single_run), _validation(fsdp_run)):
        assert ours == pytest.approx(theirs, rel=TOLERANCE), (_validation(single_run), _validation(fsdp_run))
    diff = _max_weight_diff(single_run / last.name, last / CONSOLIDATED_DIR)
    assert diff <= TOLERANCE, diff
    assert not (fsdp_run / "step-00000001" / CONSOLIDATED_DIR).exists()  # only the last one, automatically

    shutil.rmtree(last)  # resume from the sharded step 1: the same step 2 as the uninterrupted run
    output = _train_fsdp(fsdp_config)
    assert "resumed from" in output and "step-00000001" in output, output[-3000:]
    assert _losses(fsdp_run)[-1] == pytest.approx(fsdp_losses[-1], rel=TOLERANCE)
    resumed_diff = _max_weight_diff(single_run / last.name, last / CONSOLIDATED_DIR)
    assert resumed_diff <= TOLERANCE, resumed_diff

    got = tmp_path / "scene.got.txt"
    got.write_text("A <|object_ref_start|>red square<|object_ref_end|><|box_start|>(100,100),(500,500)<|box_end|> on grey.")
    out = tmp_path / "drawn.png"
    generate(checkpoint=last, out=out, got=got, steps=2)
    assert Image.open(out).size == (32, 32)


def _sharded_checkpoint(tmp_path: Path) -> Path:
    checkpoint = tmp_path / "step-00000003"
    (checkpoint / SHARDED_DIR).mkdir(parents=True)
    torch.save({"step": 3, "position": {}, "optimizer": {"param_groups": []}, "lr_scheduler": {}}, checkpoint / STATE_FILE)
    return checkpoint


def test_a_sharded_checkpoint_without_consolidated_weights_says_how_to_consolidate(tmp_path):
    with pytest.raises(CheckpointError, match="got-data consolidate --checkpoint"):
        load_weights(object(), _sharded_checkpoint(tmp_path))


def test_a_ddp_run_refuses_to_resume_from_a_sharded_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="written by an fsdp run"):
        Trainer._load_full(None, None, None, _sharded_checkpoint(tmp_path))  # type: ignore[arg-type]


def test_fsdp_needs_ray_train_workers_and_draws_nothing(tiny_shards, tmp_path):
    config = _config(tiny_shards, tmp_path / "run", "fsdp", 0)
    with pytest.raises(InputError, match="--workers N"):
        train(config=write_config(tmp_path / "fsdp.yaml", config))
    config["evaluation"] = {"shards": [str(tiny_shards["t2i"])]}
    with pytest.raises(SpecError, match="not available under train.parallelism fsdp"):
        config_from_dict(config)
