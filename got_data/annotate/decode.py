"""Decoding on Ray CPU workers: input bytes -> the image stored in the shard and the copy models see.

Runs as a Ray task so decoding and resizing scale with the cluster's CPUs, not the driver's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import ray

from got_data.ingest.images import ImageRejected, PreparedImage, prepare_image
from got_data.ingest.items import ImageReadError, ImageSource


@dataclass(frozen=True)
class DecodeResult:
    image: PreparedImage | None
    model_size: tuple[int, int] | None
    reject_reason: str | None = None
    reject_detail: str = ""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded input image: what the shard stores, and the object-store copy the models see."""

    prepared: PreparedImage
    model_image: Any  # ray.ObjectRef to an RGB PIL image
    model_size: tuple[int, int]


def _model_copy(prepared: PreparedImage, max_pixels: int | None):
    img = prepared.to_pil()
    if max_pixels and img.width * img.height > max_pixels:
        scale = math.sqrt(max_pixels / (img.width * img.height))
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), resample=3)
    return img


@ray.remote(num_cpus=0.25, num_returns=2)
def decode_task(image: ImageSource, max_input_pixels: int, model_max_pixels: int | None):
    """Returns (DecodeResult, PIL image for the models or None). Never raises for bad input."""
    try:
        prepared = prepare_image(image.read(), max_pixels=max_input_pixels)
    except ImageRejected as exc:
        return DecodeResult(None, None, exc.reason, exc.detail), None
    except ImageReadError as exc:
        return DecodeResult(None, None, exc.reason, exc.detail), None
    model_image = _model_copy(prepared, model_max_pixels)
    return DecodeResult(prepared, (model_image.width, model_image.height)), model_image
