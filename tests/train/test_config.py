"""Training configs: the shipped ones validate, mistakes are reported before any model loads."""

from pathlib import Path

import pytest

from got_data.errors import SpecError
from got_data.train.config import batch_plan, config_from_dict, load_config

CONFIGS = Path(__file__).parents[2] / "pipelines"


@pytest.mark.parametrize("name", ["train-tiny.yaml", "train-ssgm-3b.yaml", "train-ssgm-3b-finetune.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(CONFIGS / name)
    assert config.optimizer.betas == (0.9, 0.98) and config.optimizer.eps == 1e-6
    assert config.checkpoint.dir.is_absolute()


def test_ssgm_3b_follows_the_paper():
    config = load_config(CONFIGS / "train-ssgm-3b.yaml")
    lora = config.model.mllm.lora
    assert (lora.r, lora.alpha, lora.dropout) == (32, 32, 0.05)
    assert config.model.num_gen_tokens == 64 and config.train.noise_offset == 0.1
    assert batch_plan(config.train, 16).global_batch == 128
    assert (config.train.steps, config.optimizer.lr, config.schedule.warmup_steps) == (60000, 1e-4, 500)
    assert {s.name for s in config.data.sources} == {"laion-got", "journeydb-got", "omniedit-got"}


def test_ssgm_3b_finetune_follows_the_paper():
    pretrain, finetune = load_config(CONFIGS / "train-ssgm-3b.yaml"), load_config(CONFIGS / "train-ssgm-3b-finetune.yaml")
    assert (finetune.train.steps, finetune.optimizer.lr, finetune.schedule.warmup_steps) == (10000, 5e-5, 200)
    assert batch_plan(finetune.train, 16).global_batch == 128
    assert {s.name for s in finetune.data.sources} == {"flux-got", "omniedit-got", "seed-edit-multiturn-got"}
    assert finetune.init_from is not None and finetune.init_from.parent == pretrain.checkpoint.dir


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d["model"]["mllm"].update(path="/x"), "exactly one of mllm.path"),
        (lambda d: d["model"]["diffusion"].pop("tiny"), "exactly one of diffusion.path"),
        (lambda d: d["train"].update(drop={"no_spatial": 0.5, "reference_only": 0.3, "unconditional": 0.2}), "sum below 1"),
        (lambda d: d["train"].update(stepz=3), "stepz"),
    ],
)
def test_mistakes_are_reported(mutate, reason):
    import yaml

    data = yaml.safe_load((CONFIGS / "train-tiny.yaml").read_text())
    mutate(data)
    with pytest.raises(SpecError, match=reason):
        config_from_dict(data)


@pytest.mark.parametrize(
    "train, workers, plan",
    [
        ({"batch_size": 8, "global_batch": 128}, 4, (8, 4)),
        ({"batch_size": 8, "global_batch": 128}, 16, (8, 1)),
        ({"batch_size": 2, "grad_accum": 3}, 2, (2, 3)),
        ({"batch_size": 4}, 3, (4, 1)),
    ],
)
def test_batch_plan_derives_grad_accum(train, workers, plan):
    from got_data.train.config import TrainSettings, batch_plan

    result = batch_plan(TrainSettings(steps=1, **train), workers)
    assert (result.batch_size, result.grad_accum) == plan
    if "global_batch" in train:
        assert result.global_batch == train["global_batch"]


@pytest.mark.parametrize(
    "train, workers, reason",
    [
        ({"batch_size": 8, "global_batch": 128}, 3, "does not divide into 3 worker"),
        ({"batch_size": 6, "global_batch": 128}, 2, "does not divide"),
        ({"batch_size": 8, "global_batch": 128, "grad_accum": 2}, 4, "needs grad_accum 4"),
    ],
)
def test_batch_plan_refuses_what_does_not_divide(train, workers, reason):
    from got_data.train.config import TrainSettings, batch_plan

    with pytest.raises(SpecError, match=reason):
        batch_plan(TrainSettings(steps=1, **train), workers)


def test_a_config_that_is_not_utf8_is_a_one_line_error(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_bytes((CONFIGS / "train-tiny.yaml").read_bytes() + b"# caf\xe9\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_config(path)
