"""Fitting a tiny VAE on a set of pictures, so a tiny SSGM's drawings decode to colours that mean something.

Why: the tiny diffusion parts are built with random weights, and a random decoder turns any latent into
noise: nothing could be read from a tiny model's drawing. The known-answer check of the spatial guidance
(`got_data/world/ssgm_fidelity.py`) fits one on the world's training pictures first and points
`model.diffusion.vae` at it. Its scaling factor is set so the scaled latents of those pictures have unit
standard deviation, as SDXL's factor does for its own VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from got_data.errors import InputError
from got_data.train.components import tiny_vae
from got_data.train.config import TinyDiffusion


@dataclass(frozen=True)
class VaeFit:
    path: Path
    reconstruction_mse: float  # mean over the last tenth of the steps, pixels in [-1, 1]
    scaling_factor: float


def train_tiny_vae(
    images: torch.Tensor, settings: TinyDiffusion, out: Path, steps: int = 600, batch_size: int = 16,
    lr: float = 2e-3, kl_weight: float = 1e-3, seed: int = 0,
) -> VaeFit:
    """Fit an AutoencoderKL of the tiny dimensions on `images` ([N, 3, R, R] in [-1, 1]) and save it to `out`
    (a folder `model.diffusion.vae` can name). Loss: reconstruction MSE + kl_weight x KL per latent value."""
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] != images.shape[-2] or not len(images):
        raise InputError(f"a tiny VAE trains on square RGB images [N, 3, R, R], got shape {tuple(images.shape)}")
    torch.manual_seed(seed)
    vae = tiny_vae(settings, images.shape[-1])
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    recent: list[float] = []
    for step in range(steps):
        batch = images[torch.randint(len(images), (batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = F.mse_loss(vae.decode(latents).sample, batch)
        kl = posterior.kl().mean() / latents[0].numel()
        optimizer.zero_grad(set_to_none=True)
        (reconstruction + kl_weight * kl).backward()
        optimizer.step()
        schedule.step()
        if step >= steps - max(1, steps // 10):
            recent.append(reconstruction.item())
    vae.eval()
    with torch.no_grad():
        means = torch.cat([vae.encode(images[i : i + 64]).latent_dist.mean for i in range(0, len(images), 64)])
    scaling = 1.0 / max(means.std().item(), 1e-6)
    vae.register_to_config(scaling_factor=scaling)
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out)
    return VaeFit(out, sum(recent) / len(recent), scaling)
