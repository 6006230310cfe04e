"""Training configs: the shipped ones validate, mistakes are reported before any model loads."""

from pathlib import Path

import pytest

from got_data.errors import SpecError
from got_data.train.config import config_from_dict, load_config

CONFIGS = Path(__file__).parents[2] / "pipelines"


@pytest.mark.parametrize("name", ["train-tiny.yaml", "train-ssgm-3b.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(CONFIGS / name)
    assert config.optimizer.betas == (0.9, 0.98) and config.optimizer.eps == 1e-6
    assert config.checkpoint.dir.is_absolute()


def test_ssgm_3b_follows_the_paper():
    config = load_config(CONFIGS / "train-ssgm-3b.yaml")
    lora = config.model.mllm.lora
    assert (lora.r, lora.alpha, lora.dropout) == (32, 32, 0.05)
    assert config.model.num_gen_tokens == 64 and config.train.noise_offset == 0.1
    assert config.train.batch_size * config.train.grad_accum == 128


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
