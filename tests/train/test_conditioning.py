"""Spatial canvases, the 12-channel UNet input and its zero-initialised widening, by hand-computed values."""

import numpy as np
import pytest
import torch

from got_data.errors import CodecError
from got_data.records import Box
from got_data.train.components import widen_conv_in
from got_data.train.conditioning import MASK_COLORS, got_boxes, mask_canvases, spatial_canvases
from got_data.train.model import segment_mean, ssgm_input

GOT = (
    "A <|object_ref_start|>cat<|object_ref_end|><|box_start|>(0,0),(500,500)<|box_end|> and a "
    "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(500,250),(999,999)<|box_end|>."
)


def test_one_canvas_per_box_in_fixed_colours():
    canvases = mask_canvases([Box(x1=0, y1=0, x2=500, y2=500), Box(x1=500, y1=250, x2=999, y2=999)], 8, 4)
    assert canvases.shape == (2, 4, 8, 3)
    # box 0: pixels x 0..4, y 0..2 are red, the rest black
    assert (canvases[0, :2, :4] == MASK_COLORS[0]).all() and canvases[0, 2:].sum() == 0 and canvases[0, :, 4:].sum() == 0
    # box 1: x 4..8, y 1..4 green
    assert (canvases[1, 1:, 4:] == MASK_COLORS[1]).all() and canvases[1, 0].sum() == 0 and canvases[1, :, :4].sum() == 0


def test_no_boxes_gives_one_black_canvas():
    canvases = mask_canvases([], 6, 6)
    assert canvases.shape == (1, 6, 6, 3) and canvases.sum() == 0


def test_spatial_canvases_from_got_text_in_model_range():
    out = spatial_canvases(got_boxes(GOT), 8)
    assert out.shape == (2, 3, 8, 8)
    assert out[0, :, 0, 0].tolist() == [1.0, -1.0, -1.0]  # red
    assert out[1, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]  # black outside the dog's box
    with pytest.raises(CodecError):
        got_boxes("broken <|box_start|>(1,1),(2,2)<|box_end|>")


def test_ssgm_input_channel_order():
    noisy, ref, spatial = torch.full((1, 4, 2, 2), 1.0), torch.full((1, 4, 2, 2), 2.0), torch.full((1, 4, 2, 2), 3.0)
    x = ssgm_input(noisy, ref, spatial)
    assert x.shape == (1, 12, 2, 2)
    assert x[0, :, 0, 0].tolist() == [1.0] * 4 + [2.0] * 4 + [3.0] * 4


class _UNetStub(torch.nn.Module):
    """Holds only conv_in and a config, the two things widening touches."""

    def __init__(self):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(4, 2, kernel_size=1)
        self.config = {}

    def register_to_config(self, **kwargs):
        self.config.update(kwargs)


def test_widened_conv_keeps_pretrained_output_and_zero_new_weights():
    unet = _UNetStub()
    with torch.no_grad():
        unet.conv_in.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]]).view(2, 4, 1, 1))
        unet.conv_in.bias.copy_(torch.tensor([0.25, -0.5]))
    widen_conv_in(unet, 12)
    assert unet.conv_in.in_channels == 12 and unet.config["in_channels"] == 12
    assert unet.conv_in.weight[:, 4:].abs().sum() == 0
    x = torch.cat([torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.full((8,), 7.0)]).view(1, 12, 1, 1)
    # hand-computed: 1+2+3+4 + 0.25 = 10.25 ; 0.5+0-1+2 - 0.5 = 1.0 (reference/spatial channels ignored at init)
    assert unet.conv_in(x).flatten().tolist() == [10.25, 1.0]


def test_mask_latents_are_averaged_per_sample():
    latents = torch.tensor([1.0, 3.0, 10.0, 2.0, 4.0, 6.0]).view(6, 1, 1, 1)
    out = segment_mean(latents, torch.tensor([2, 1, 3]))
    assert out.flatten().tolist() == [2.0, 10.0, 4.0]
    assert np.isclose(out.sum().item(), 16.0)
