"""Crops of an edit region for the crop_describe stage.

The models see the decode workers' downscaled copy of each image (an object-store ref), so a crop is
cut from that copy by a small Ray task next to it and handed to the pool as a ref: the driver never
holds pixels. Crops are widened to a minimum side and a bounded aspect ratio, because the Qwen-VL
processors refuse very thin images and learn nothing from a few pixels (`records.boxes.crop_pixels`).
"""

from __future__ import annotations

from typing import Any

import ray
from PIL import Image

from got_data.records.boxes import Box, crop_pixels


@ray.remote(num_cpus=0.1)
def _crop_task(image: Image.Image, rect: tuple[int, int, int, int]) -> Image.Image:
    return image.crop(rect)


def crop_region(image: Any, size: tuple[int, int], box: Box) -> Any:
    """The crop of `box` from a model image: a PIL image in, a PIL image out; a Ray ref in, a ref out."""
    return crop_rect(image, crop_pixels(box, *size))


def crop_rect(image: Any, rect: tuple[int, int, int, int]) -> Any:
    """The pixel rectangle `rect` cut from a model image (PIL or Ray ref, as `crop_region`)."""
    if isinstance(image, Image.Image):
        return image.crop(rect)
    return _crop_task.remote(image, rect)
