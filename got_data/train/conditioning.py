"""The SSGM's image conditions, built from records: target, reference and spatial-mask canvases.

Why canvases: the paper's spatial guidance paints each GoT box on its own black canvas in a colour
fixed by the box's position in the GoT, VAE-encodes every canvas and averages the latents; the
reference is the source image for edits and an all-black image for T2I. Images are resized to the
square training resolution without cropping, so the relative GoT boxes stay exact.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from got_data.errors import ShardError
from got_data.records import Box, parse_got, rel_to_pixels
from got_data.shards.image_formats import ImageFormatError, open_claimed

# Fixed order: box i of the GoT gets MASK_COLORS[i % len(MASK_COLORS)].
MASK_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (0, 128, 255),
    (255, 255, 255),
)


def got_boxes(got: str) -> list[Box]:
    """The boxes of a GoT text in reading order; raises CodecError when the text is malformed."""
    return parse_got(got).boxes()


def mask_canvases(boxes: list[Box], width: int, height: int) -> np.ndarray:
    """One black RGB canvas per box with the box filled in its colour; one black canvas when there are
    no boxes. Returns uint8 [K, H, W, 3]."""
    count = max(1, len(boxes))
    canvases = np.zeros((count, height, width, 3), dtype=np.uint8)
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = rel_to_pixels(box, width, height)
        canvases[i, y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)] = MASK_COLORS[i % len(MASK_COLORS)]
    return canvases


def to_model_range(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1], the VAE's input range."""
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).float().div(127.5).sub(1.0)
    return tensor.movedim(-1, -3)


def from_model_range(tensor: torch.Tensor) -> Image.Image:
    """float [3, H, W] in [-1, 1] -> RGB PIL image."""
    array = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def open_image(data: bytes, name: str, what: str) -> Image.Image:
    """Decode image bytes to RGB as the one format `name` (a member or file name) claims, so no other
    Pillow plugin ever parses them; raises ShardError naming `what` when they are not that image."""
    try:
        with open_claimed(data, name) as img:
            return img.convert("RGB")
    except ImageFormatError as exc:
        raise ShardError(f"{what}: {exc}") from exc
    except Exception as exc:  # the format's own plugin raises several unrelated types for bad bytes
        raise ShardError(f"{what} is not a readable image: {exc}") from exc


def resize_pixels(image: Image.Image, resolution: int) -> np.ndarray:
    """RGB image -> uint8 [resolution, resolution, 3] (plain resize: relative boxes stay aligned)."""
    return np.array(image.convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC), dtype=np.uint8)


def black_pixels(resolution: int) -> np.ndarray:
    return np.zeros((resolution, resolution, 3), dtype=np.uint8)


def spatial_canvases(boxes: list[Box], resolution: int) -> torch.Tensor:
    """Mask canvases of a GoT's boxes at the training resolution, in model range: [K, 3, R, R]."""
    return to_model_range(mask_canvases(boxes, resolution, resolution))
