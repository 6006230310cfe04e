"""Crops of an edit region for the crop_describe stage.

The models see the decode workers' downscaled copy of each image (an object-store ref), so a crop is
cut from that copy by a small Ray task next to it and handed to the pool as a ref: the driver never
holds pixels. The crops of one image go in one task (`crop_rects`): a Ray task costs its caller
about a CPU-millisecond to submit, more than the cropping. Crops are widened to a minimum side and a
bounded aspect ratio, because the Qwen-VL processors refuse very thin images and learn nothing from
a few pixels (`records.boxes.crop_pixels`).
"""

from __future__ import annotations

from typing import Any

import ray
from PIL import Image

from got_data.records.boxes import Box, crop_pixels

Rect = tuple[int, int, int, int]


@ray.remote(num_cpus=0.1)
def _crop_task(image: Image.Image, rects: list[Rect]) -> Image.Image | tuple[Image.Image, ...]:
    crops = tuple(image.crop(rect) for rect in rects)
    return crops[0] if len(crops) == 1 else crops  # one ref per crop (num_returns)


def crop_region(image: Any, size: tuple[int, int], box: Box) -> Any:
    """The crop of `box` from a model image: a PIL image in, a PIL image out; a Ray ref in, a ref out."""
    return crop_rect(image, crop_pixels(box, *size))


def crop_rect(image: Any, rect: Rect) -> Any:
    """The pixel rectangle `rect` cut from a model image (PIL or Ray ref, as `crop_region`)."""
    return crop_rects(image, [rect])[0]


def crop_rects(image: Any, rects: list[Rect]) -> list[Any]:
    """Each pixel rectangle of `rects` cut from one model image, in order (PIL or Ray refs, as
    `crop_region`), by one task."""
    if isinstance(image, Image.Image):
        return [image.crop(rect) for rect in rects]
    if not rects:
        return []
    refs = _crop_task.options(num_returns=len(rects)).remote(image, rects)
    return refs if len(rects) > 1 else [refs]
