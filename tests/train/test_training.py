"""End to end on CPU with the tiny config: the loss falls, resume is exact, generate writes an image."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from got_data.cli.train import generate, got_text_path, train
from got_data.errors import InputError
from got_data.train.checkpoint import latest_checkpoint, list_checkpoints
from got_data.train.config import config_from_dict
from got_data.train.trainer import METRICS_FILE, VALIDATION_FILE, Trainer
from tests.train.conftest import tiny_config_dict, write_config

STEPS = 22


@pytest.fixture(scope="module")
def trained(tiny_shards, tmp_path_factory):
    """A tiny run of STEPS steps through the `train` command, checkpointed half way and at the end."""
    run = tmp_path_factory.mktemp("run")
    config = tiny_config_dict(tiny_shards, run / "out", steps=STEPS)
    config["checkpoint"].update(every=STEPS // 2, keep=None)
    config["validation"] = {"shards": [str(tiny_shards["edit"])], "samples": 5, "every": 10, "batch_size": 2}
    config["evaluation"] = {"shards": [str(tiny_shards["t2i"]), str(tiny_shards["edit"])], "samples": 2,
                            "every": STEPS, "steps": 2}
    train(write_config(run / "train.yaml", config))
    return run, config


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / METRICS_FILE).read_text().splitlines()]


def test_loss_falls(trained):
    run, _ = trained
    losses = _losses(run / "out")
    assert len(losses) == STEPS
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3, losses
    assert [p.name for p in list_checkpoints(run / "out")] == ["step-00000011", "step-00000022"]


def test_validation_loss_is_logged_on_a_fixed_set(trained):
    run, _ = trained
    rows = (run / "out" / VALIDATION_FILE).read_text().splitlines()
    assert rows[0] == "step,loss,ce,mse"
    values = [[float(v) for v in row.split(",")] for row in rows[1:]]
    assert [int(v[0]) for v in values] == [10, 20, STEPS]
    assert all(abs(v[1] - (v[2] + v[3])) < 1e-4 for v in values)  # loss = ce + mse at weights 1, 1
    assert values[-1][1] < values[0][1]  # the same samples and noise each time: the fit shows


def test_evaluation_page_shows_drawings_with_boxes_and_loss_curves(trained, tiny_shards):
    from got_data.records import rel_to_pixels
    from got_data.shards.reader import iter_samples
    from got_data.train.conditioning import MASK_COLORS, got_boxes
    from got_data.train.evaluation import SHOWN_SIZE

    run, _ = trained
    page = (run / "out" / "eval.html").read_text()
    assert "<svg" in page and page.count("<polyline") == 2  # training and validation loss
    folder = run / "out" / "eval" / f"step-{STEPS:08d}"
    drawn = sorted(folder.glob("*.png"))
    assert len(drawn) == 2 and all(f"eval/{folder.name}/{p.name}" in page for p in drawn)
    records = {s.key: s.record for s in iter_samples([tiny_shards["t2i"], tiny_shards["edit"]])}
    for path in drawn:
        boxes = got_boxes(records[path.stem].got)
        with Image.open(path) as img:
            assert img.size == (SHOWN_SIZE, SHOWN_SIZE)
            x1, y1, x2, y2 = rel_to_pixels(boxes[0], SHOWN_SIZE, SHOWN_SIZE)
            assert img.convert("RGB").getpixel((x1, (y1 + y2) // 2)) == MASK_COLORS[0]  # the first box's outline


def test_resume_gives_the_same_next_losses(trained, tmp_path):
    run, config = trained
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(run / "out" / "step-00000011", resumed_dir / "step-00000011")
    shutil.copytree(run / "out" / "base", resumed_dir / "base")
    config = dict(config, checkpoint=dict(config["checkpoint"], dir=str(resumed_dir)))
    history = Trainer(config_from_dict(config), log=lambda _: None).run()
    assert [h["step"] for h in history] == list(range(12, STEPS + 1))
    expected = _losses(run / "out")[11:]
    assert [h["loss"] for h in history] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_generate_from_prompt_writes_image_and_got(trained, tmp_path):
    run, _ = trained
    out = tmp_path / "t2i.png"
    generate(checkpoint=latest_checkpoint(run / "out"), out=out, prompt="a red square", width=48, height=32, steps=2)
    with Image.open(out) as img:
        assert img.size == (48, 32)
    assert got_text_path(out).is_file()


def test_generate_edit_from_an_edited_got(trained, tiny_shards, tmp_path):
    run, _ = trained
    got = tmp_path / "edited.got.txt"
    got.write_text("Move the <|object_ref_start|>red square<|object_ref_end|><|box_start|>(600,600),(900,900)<|box_end|>.")
    source = tmp_path / "source.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(source)
    out = tmp_path / "edit.png"
    generate(checkpoint=latest_checkpoint(run / "out"), out=out, got=got, source=source, steps=2)
    with Image.open(out) as img:
        assert img.size == (32, 32)  # the training resolution by default
    assert got_text_path(out).read_text().strip() == got.read_text()
    bad = tmp_path / "bad.got.txt"
    bad.write_text("<|box_start|>(1,1),(2,2)<|box_end|> stray box")
    with pytest.raises(InputError, match="does not parse"):
        generate(checkpoint=latest_checkpoint(run / "out"), out=tmp_path / "x.png", got=bad, steps=1)


def test_init_from_loads_weights_only_and_resume_stays_exact(trained, tmp_path):
    from safetensors.torch import load_file

    run, config = trained
    phase1 = run / "out" / "step-00000011"
    phase2 = dict(config, init_from=str(phase1), checkpoint=dict(config["checkpoint"], dir=str(tmp_path / "p2"), every=2))
    phase2["train"] = dict(config["train"], steps=4)
    state = Trainer(config_from_dict(phase2), log=lambda _: None).setup()
    assert state.step == 0 and state.resumed_from is None
    assert len(state.optimizer.state) == 0  # fresh optimizer: no moments carried over
    assert state.lr_scheduler.last_epoch == 0
    saved = load_file(phase1 / "projectors.safetensors")
    assert torch.equal(state.model.text_projector.weight, saved["text.weight"])
    history = Trainer(config_from_dict(phase2), log=lambda _: None).run()
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    shutil.rmtree(tmp_path / "p2" / "step-00000004")
    resumed = Trainer(config_from_dict(phase2), log=lambda _: None).run()
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in history[2:]], rel=1e-5, abs=1e-6)
