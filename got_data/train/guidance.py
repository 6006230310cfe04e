"""Conditioning branches of the SSGM and the paper's three-way classifier-free guidance.

Training drops conditions per sample so the UNet learns every branch guidance needs: full (text,
reference, spatial), text (text + reference), image (reference only) and unconditional. The full
conditioning is never replaced wholesale: it is what the others are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch


class Branch(IntEnum):
    FULL = 0
    TEXT = 1  # text + reference, no spatial
    IMAGE = 2  # reference only
    UNCOND = 3


# Which conditions each branch keeps: (text, reference, spatial).
BRANCH_KEEPS: dict[Branch, tuple[bool, bool, bool]] = {
    Branch.FULL: (True, True, True),
    Branch.TEXT: (True, True, False),
    Branch.IMAGE: (False, True, False),
    Branch.UNCOND: (False, False, False),
}


@dataclass(frozen=True)
class GuidanceScales:
    text: float
    spatial: float
    reference: float


# The paper's defaults. For T2I the reference is the black image, so a_r = 1 makes the image branch
# the plain unconditional baseline of ordinary CFG.
T2I_SCALES = GuidanceScales(text=7.5, spatial=4.0, reference=1.0)
EDIT_SCALES = GuidanceScales(text=4.0, spatial=3.0, reference=1.5)


def combine_guidance(
    eps_full: torch.Tensor,
    eps_text: torch.Tensor,
    eps_image: torch.Tensor,
    eps_uncond: torch.Tensor,
    scales: GuidanceScales,
) -> torch.Tensor:
    """eps = eps_uncond + a_t (eps_text - eps_image) + a_s (eps_full - eps_text) + a_r (eps_image - eps_uncond)."""
    return (
        eps_uncond
        + scales.text * (eps_text - eps_image)
        + scales.spatial * (eps_full - eps_text)
        + scales.reference * (eps_image - eps_uncond)
    )


def keep_masks(branches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float masks [B] for (text, reference, spatial): 1 keeps the condition, 0 replaces it with zeros."""
    table = torch.tensor([BRANCH_KEEPS[Branch(i)] for i in range(len(Branch))], dtype=torch.float32)
    rows = table[branches]
    return rows[:, 0], rows[:, 1], rows[:, 2]
