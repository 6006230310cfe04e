"""Checkpoint files that cannot run code, init_from (weights only), and logs trimmed on resume."""

from __future__ import annotations

import json
import os

import pytest
import torch

from got_data.cli.train import generate
from got_data.errors import InputError
from got_data.train.checkpoint import STATE_FILE, CheckpointError, load_training_state
from got_data.train.metrics import MetricsLog


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_in_trainer_state_never_runs(tmp_path):
    checkpoint = tmp_path / "step-00000001"
    checkpoint.mkdir()
    marker = tmp_path / "code-ran"
    torch.save({"step": 1, "payload": _RunsCode(str(marker))}, checkpoint / STATE_FILE)
    with pytest.raises(CheckpointError, match="never loaded"):
        load_training_state(checkpoint)
    assert not marker.exists()


def test_logs_drop_steps_after_the_resumed_checkpoint(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "validation.csv")
    for step in range(1, 7):
        log.train({"step": step, "loss": 1.0 / step})
        if step % 2 == 0:
            log.validation(step, {"loss": 0.5, "ce": 0.25, "mse": 0.25})
    log.truncate_after(4)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    rows = (tmp_path / "validation.csv").read_text().splitlines()
    assert rows[0] == "step,loss,ce,mse" and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "validation.csv", enabled=False).truncate_after(0)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4  # only rank 0 touches the logs


def test_got_file_is_checked_before_any_model_loads(tmp_path):
    missing = tmp_path / "no-such-checkpoint"  # loading it would fail with another error
    not_utf8 = tmp_path / "latin1.got.txt"
    not_utf8.write_bytes("Le caf\xe9 <|object_ref_start|>a cup<|object_ref_end|>".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        generate(checkpoint=missing, out=tmp_path / "x.png", got=not_utf8)
    broken = tmp_path / "broken.got.txt"
    broken.write_text("<|box_start|>(1,1),(2,2)<|box_end|> stray box")
    with pytest.raises(InputError, match="does not parse"):
        generate(checkpoint=missing, out=tmp_path / "x.png", got=broken)


def test_source_image_opens_only_as_the_format_its_name_claims(tmp_path):
    from PIL import Image

    source = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(source, format="GIF")
    with pytest.raises(InputError, match="not a PNG image"):
        generate(checkpoint=tmp_path / "no-such-checkpoint", out=tmp_path / "x.png", prompt="p", source=source)
