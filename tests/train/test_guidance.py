"""Three-way CFG combination and training-branch sampling, checked against hand-computed values."""

import torch

from got_data.train.config import DropSettings
from got_data.train.guidance import (
    EDIT_SCALES,
    T2I_SCALES,
    Branch,
    GuidanceScales,
    combine_guidance,
    keep_masks,
)
from got_data.train.randomness import draw_samples


def test_combination_matches_hand_computed_value():
    full, text, image, uncond = (torch.tensor([v]) for v in (5.0, 3.0, 2.0, 1.0))
    # 1 + 4*(3-2) + 3*(5-3) + 1.5*(2-1) = 1 + 4 + 6 + 1.5
    assert combine_guidance(full, text, image, uncond, EDIT_SCALES).item() == 12.5
    # T2I: 1 + 7.5*1 + 4*2 + 1*1
    assert combine_guidance(full, text, image, uncond, T2I_SCALES).item() == 17.5


def test_unit_scales_give_the_full_prediction():
    eps = [torch.randn(2, 4, 3, 3) for _ in range(4)]
    out = combine_guidance(*eps, GuidanceScales(text=1.0, spatial=1.0, reference=1.0))
    torch.testing.assert_close(out, eps[0])


def test_paper_defaults():
    assert (T2I_SCALES.text, T2I_SCALES.spatial) == (7.5, 4.0)
    assert (EDIT_SCALES.text, EDIT_SCALES.spatial, EDIT_SCALES.reference) == (4.0, 3.0, 1.5)


def _draws(keys, step=3, drop=DropSettings()):
    return draw_samples(keys, seed=1, step=step, latent_shape=(4, 2, 2), num_timesteps=1000, drop=drop, noise_offset=0.1)


def test_branch_sampling_rates_and_masks():
    branches = _draws([f"k{i}" for i in range(20000)]).branches
    rates = torch.bincount(branches, minlength=4).float() / len(branches)
    assert abs(rates[Branch.FULL] - 0.85) < 0.02
    for b in (Branch.TEXT, Branch.IMAGE, Branch.UNCOND):
        assert abs(rates[b] - 0.05) < 0.01
    text, ref, spatial = keep_masks(torch.tensor([0, 1, 2, 3]))
    assert text.tolist() == [1, 1, 0, 0]
    assert ref.tolist() == [1, 1, 1, 0]
    assert spatial.tolist() == [1, 0, 0, 0]


def test_no_dropping_keeps_everything_full():
    none = DropSettings(no_spatial=0, reference_only=0, unconditional=0)
    assert (_draws([f"k{i}" for i in range(100)], drop=none).branches == Branch.FULL).all()


def test_a_samples_draws_depend_on_its_key_and_step_not_its_batch():
    alone, mixed = _draws(["a"]), _draws(["c", "b", "a"])
    for field in ("branches", "timesteps", "noise", "posterior"):
        torch.testing.assert_close(getattr(alone, field)[0], getattr(mixed, field)[2], rtol=0, atol=0)
    assert not torch.equal(_draws(["a"], step=4).noise, alone.noise)
    assert not torch.equal(mixed.noise[0], mixed.noise[1])
