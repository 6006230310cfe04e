"""The parts of the known-answer check of the spatial guidance: the ablation switch cuts the box path, the
tiny VAE fits and loads through `model.diffusion.vae`."""

from __future__ import annotations

import pytest
import torch

from got_data.train.config import DropSettings, TinyDiffusion, config_from_dict
from got_data.train.data import make_loader
from got_data.train.tiny_vae import train_tiny_vae
from got_data.train.trainer import Trainer, make_encoder
from tests.train.conftest import tiny_config_dict


def _spatial_gradient(tiny_shards, run_dir, guided: bool, vae=None) -> tuple[float, float, object]:
    """One backward of the full conditioning: the gradient on conv_in's spatial inputs (channels 8-11) and
    the size of the spatial latents the model feeds the UNet."""
    raw = tiny_config_dict(tiny_shards, run_dir)
    raw["model"]["spatial_guidance"] = guided
    raw["data"]["workers"] = 0
    if vae is not None:
        raw["model"]["diffusion"]["vae"] = str(vae)
    config = config_from_dict(raw)
    model = Trainer(config, log=lambda _: None).setup().model
    batch = next(iter(make_loader(config.data, make_encoder(config, model), 2, config.seed)))
    full = config.train.model_copy(update={"drop": DropSettings(no_spatial=0, reference_only=0, unconditional=0)})
    model.training_loss(batch, full, config.seed, 0).total.backward()
    spatial = model.spatial_latents(batch["canvases"], batch["canvas_counts"])
    return model.unet.conv_in.weight.grad[:, 8:12].abs().sum().item(), spatial.abs().sum().item(), model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One run folder: its tiny base models are built once for the module (setup writes no checkpoint)."""
    return tmp_path_factory.mktemp("known-answer-run")


def test_without_spatial_guidance_no_box_reaches_the_unet(tiny_shards, run_dir):
    guided_grad, guided_spatial, _ = _spatial_gradient(tiny_shards, run_dir, True)
    ablated_grad, ablated_spatial, _ = _spatial_gradient(tiny_shards, run_dir, False)
    assert guided_grad > 0 and guided_spatial > 0
    assert ablated_grad == 0 and ablated_spatial == 0


def test_a_fitted_tiny_vae_reconstructs_and_loads_in_place_of_the_random_one(tiny_shards, run_dir, tmp_path):
    generator = torch.Generator().manual_seed(0)
    colours = torch.rand(8, 3, 1, 1, generator=generator) * 2 - 1
    images = colours.expand(8, 3, 32, 32).clone()
    images[:, :, 8:20, 10:24] = -colours[:, :, :, :]  # a box of the opposite colour
    settings = TinyDiffusion(**tiny_config_dict(tiny_shards, tmp_path)["model"]["diffusion"]["tiny"])
    untrained = train_tiny_vae(images, settings, tmp_path / "vae0", steps=1, lr=1e-9)
    fitted = train_tiny_vae(images, settings, tmp_path / "vae", steps=60, batch_size=8)
    assert fitted.reconstruction_mse < 0.5 * untrained.reconstruction_mse, (fitted, untrained)
    _, _, model = _spatial_gradient(tiny_shards, run_dir, True, vae=fitted.path)
    assert abs(model.vae.config.scaling_factor - fitted.scaling_factor) < 1e-6
    decoded = model.vae.decode(model.encode_images(images) / model.vae.config.scaling_factor).sample
    assert torch.nn.functional.mse_loss(decoded, images).item() < 0.5 * untrained.reconstruction_mse
