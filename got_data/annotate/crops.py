"""Crops of an edit region for the crop_describe stage.

The models see the decode workers' downscaled copy of each image (an object-store ref), so a crop of
it is an `ImageCrop` (the ref and a rectangle) that the engine actor cuts once it has fetched the
image: the driver never holds pixels, and no Ray task is submitted per crop (a task cost its caller
about a CPU-millisecond, more than the cropping; bench/driver_ceiling.py). Crops are widened to a minimum side and a
bounded aspect ratio, because the Qwen-VL processors refuse very thin images and learn nothing from
a few pixels (`records.boxes.crop_pixels`).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from got_data.engines.types import ImageCrop
from got_data.records.boxes import Box, crop_pixels

Rect = tuple[int, int, int, int]


def crop_region(image: Any, size: tuple[int, int], box: Box) -> Any:
    """The crop of `box` from a model image: a PIL image in, a PIL image out; a Ray ref in, an
    `ImageCrop` of it out."""
    return crop_rect(image, crop_pixels(box, *size))


def crop_rect(image: Any, rect: Rect) -> Any:
    """The pixel rectangle `rect` cut from a model image (PIL or Ray ref, as `crop_region`)."""
    return crop_rects(image, [rect])[0]


def crop_rects(image: Any, rects: list[Rect]) -> list[Any]:
    """Each pixel rectangle of `rects` of one model image, in order (as `crop_region`)."""
    if isinstance(image, Image.Image):
        return [image.crop(rect) for rect in rects]
    return [ImageCrop(image, rect) for rect in rects]
