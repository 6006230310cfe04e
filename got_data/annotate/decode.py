"""Decoding on Ray CPU workers: input bytes -> the image stored in the shard and the copy models see.

Runs as a Ray task so decoding and resizing scale with the cluster's CPUs, not the driver's.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import ray

from got_data.errors import InputRefused
from got_data.ingest.images import DEFAULT_MIN_SIDE, PreparedImage, StoreAs, prepare_image
from got_data.ingest.items import ImageSource


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


def _decode_one(image: ImageSource, max_input_pixels: int, model_max_pixels: int | None, strip_metadata: bool,
                store_as: StoreAs = "keep", min_side: int = DEFAULT_MIN_SIDE) -> tuple:
    """(DecodeResult, PIL image for the models or None). Never raises for bad input."""
    try:
        prepared = prepare_image(image.read(), max_pixels=max_input_pixels, min_side=min_side,
                                 strip_metadata=strip_metadata, store_as=store_as)
    except InputRefused as exc:  # ImageReadError or ImageRejected: the reason and detail of a reject row
        return DecodeResult(None, None, exc.reason, exc.detail), None
    model_image = _model_copy(prepared, model_max_pixels)
    return DecodeResult(prepared, (model_image.width, model_image.height)), model_image


DECODE_TASK_CPUS = 0.25  # what a decode task reserves: 4 run at once per CPU (their reads wait on storage)
DECODE_GROUP_SIZE = 8  # images per decode task, at most (DecodeGroups)


@ray.remote(num_cpus=DECODE_TASK_CPUS)
def decode_group_task(images: list[ImageSource], max_input_pixels: int, model_max_pixels: int | None,
                      strip_metadata: bool = False, store_as: StoreAs = "keep",
                      min_side: int = DEFAULT_MIN_SIDE) -> tuple:
    """(DecodeResult, model image) of each image, flattened, each its own return object, so a
    request references only its own image. Called with num_returns=2 * len(images)."""
    return tuple(part for image in images
                 for part in _decode_one(image, max_input_pixels, model_max_pixels, strip_metadata, store_as, min_side))


class DecodeGroups:
    """Decodes on Ray workers, one task per group of images rather than per image.

    Inputs that ask for decoding in the same turn of the event loop (the runner starts many at
    once) share tasks of up to `group_size` images. A Ray task costs tens of milliseconds of
    scheduling on a small machine, and decoding a photo a few; 24 one-image tasks took 0.5-1 s
    here, three 8-image tasks 0.05 s."""

    def __init__(self, max_input_pixels: int, model_max_pixels: int | None, group_size: int = DECODE_GROUP_SIZE,
                 strip_metadata: bool = False, store_as: StoreAs = "keep",
                 min_side: int = DEFAULT_MIN_SIDE) -> None:
        self.max_input_pixels = max_input_pixels
        self.min_side = min_side
        self.model_max_pixels = model_max_pixels
        self.strip_metadata = strip_metadata
        self.store_as = store_as
        self.group_size = group_size
        self._waiting: list[tuple[list[ImageSource], asyncio.Future]] = []

    async def decode(self, images: list[ImageSource]) -> list[tuple[Any, Any]]:
        """(DecodeResult ref, model image ref) for each image, in order."""
        if not images:
            return []
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._submit)
        self._waiting.append((images, future))
        return await future

    def _submit(self) -> None:
        waiting, self._waiting = self._waiting, []
        group: list[tuple[list[ImageSource], asyncio.Future]] = []
        count = 0
        for entry in waiting:
            group.append(entry)
            count += len(entry[0])
            if count >= self.group_size:
                self._submit_group(group)
                group, count = [], 0
        if group:
            self._submit_group(group)

    def _submit_group(self, group: list[tuple[list[ImageSource], asyncio.Future]]) -> None:
        images = [image for entry_images, _ in group for image in entry_images]
        try:
            refs = decode_group_task.options(num_returns=2 * len(images)).remote(
                images, self.max_input_pixels, self.model_max_pixels, self.strip_metadata, self.store_as,
                self.min_side)
        except Exception as exc:  # e.g. a source that cannot be serialized
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for entry_images, future in group:
            pairs = [(refs[at + 2 * k], refs[at + 2 * k + 1]) for k in range(len(entry_images))]
            at += 2 * len(entry_images)
            if not future.done():
                future.set_result(pairs)
