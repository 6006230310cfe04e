"""Crops of an edit region for the crop_describe stage.

The models see the decode workers' downscaled copy of each image (an object-store ref), so a crop is
cut from that copy by a small Ray task next to it and handed to the pool as a ref: the driver never
holds pixels. Crops are widened to a minimum side and a bounded aspect ratio, because the Qwen-VL
processors refuse very thin images and learn nothing from a few pixels.
"""

from __future__ import annotations

from typing import Any

import ray
from PIL import Image

from got_data.records.boxes import Box, rel_to_pixels

MIN_CROP_SIDE = 28
MAX_CROP_ASPECT = 8.0


def _widen(lo: int, hi: int, want: int, limit: int) -> tuple[int, int]:
    """[lo, hi) grown symmetrically to length `want`, kept inside [0, limit)."""
    want = min(want, limit)
    if hi - lo >= want:
        return lo, hi
    lo = max(0, min(lo - (want - (hi - lo)) // 2, limit - want))
    return lo, lo + want


def crop_pixels(box: Box, width: int, height: int, min_side: int = MIN_CROP_SIDE,
                max_aspect: float = MAX_CROP_ASPECT) -> tuple[int, int, int, int]:
    """The pixel rectangle to cut for a relative box on a width x height image."""
    x1, y1, x2, y2 = rel_to_pixels(box, width, height)
    x1, x2 = _widen(x1, max(x2, x1 + 1), min_side, width)
    y1, y2 = _widen(y1, max(y2, y1 + 1), min_side, height)
    w, h = x2 - x1, y2 - y1
    if w > h * max_aspect:
        y1, y2 = _widen(y1, y2, int(w / max_aspect) + 1, height)
    elif h > w * max_aspect:
        x1, x2 = _widen(x1, x2, int(h / max_aspect) + 1, width)
    return x1, y1, x2, y2


@ray.remote(num_cpus=0.1)
def _crop_task(image: Image.Image, rect: tuple[int, int, int, int]) -> Image.Image:
    return image.crop(rect)


def crop_region(image: Any, size: tuple[int, int], box: Box) -> Any:
    """The crop of `box` from a model image: a PIL image in, a PIL image out; a Ray ref in, a ref out."""
    rect = crop_pixels(box, *size)
    if isinstance(image, Image.Image):
        return image.crop(rect)
    return _crop_task.remote(image, rect)
