"""Randomness of a training step drawn per sample, from (seed, step, sample key), never from a rank.

Why: the noise, timestep, dropped conditions and VAE posterior draw of a sample must not depend on
which worker holds it or on its place in a micro-batch. Then N workers averaging their gradients
compute exactly what one process computes on the same global batch, and resume needs no RNG state:
step s draws the same numbers whenever it runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from got_data.train.config import DropSettings
from got_data.train.guidance import Branch


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (stable across processes and Python runs)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class SampleDraws:
    """Per-sample draws of one micro-batch, stacked: what `GoTModel.training_loss` consumes."""

    branches: torch.Tensor  # [B] Branch values
    timesteps: torch.Tensor  # [B]
    noise: torch.Tensor  # [B, C, h, w]
    posterior: torch.Tensor  # [B, C, h, w] standard normal, for the target's VAE posterior sample


def branch_of(u: float, drop: DropSettings) -> Branch:
    """The training branch a uniform draw picks: TEXT, IMAGE, UNCOND by probability, FULL otherwise."""
    if u < drop.no_spatial:
        return Branch.TEXT
    if u < drop.no_spatial + drop.reference_only:
        return Branch.IMAGE
    if u < drop.no_spatial + drop.reference_only + drop.unconditional:
        return Branch.UNCOND
    return Branch.FULL


def draw_samples(
    keys: list[str], seed: int, step: int, latent_shape: tuple[int, int, int], num_timesteps: int,
    drop: DropSettings, noise_offset: float,
) -> SampleDraws:
    """Draw every sample's randomness from its own generator seeded by (seed, step, key)."""
    branches, timesteps, noises, posteriors = [], [], [], []
    channels = latent_shape[0]
    for key in keys:
        generator = torch.Generator().manual_seed(derived_seed("sample", seed, step, key))
        branches.append(int(branch_of(torch.rand(1, generator=generator).item(), drop)))
        timesteps.append(int(torch.randint(0, num_timesteps, (1,), generator=generator)))
        noise = torch.randn(latent_shape, generator=generator)
        offset = torch.randn(channels, 1, 1, generator=generator)
        noises.append(noise + noise_offset * offset if noise_offset else noise)
        posteriors.append(torch.randn(latent_shape, generator=generator))
    return SampleDraws(
        branches=torch.tensor(branches, dtype=torch.long),
        timesteps=torch.tensor(timesteps, dtype=torch.long),
        noise=torch.stack(noises),
        posterior=torch.stack(posteriors),
    )
