"""Per-sample training inputs built from a shard sample, and their batching.

T2I: the prompt -> GoT + image tokens; target = the image; reference = black.
Edit: instruction + source image -> GoT + image tokens; target = the target image; reference = source.
Multi-turn records train as one edit from the source to the last turn, instructions in order.
Spatial canvases: T2I boxes every object; an edit its regions, or (`data.spatial_boxes: all_objects`)
every box of its GoT, the other objects it names included (schema 1.1).
Image members are always found through the record (`record.image(role).member`), never by name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from got_data.records import AnyRecord, Box, EditRecord, MultiTurnRecord, T2IRecord
from got_data.train.conditioning import (
    black_pixels,
    got_boxes,
    open_image,
    resize_pixels,
    spatial_canvases,
    to_model_range,
)
from got_data.train.config import SpatialBoxes
from got_data.train.prompting import IGNORE_INDEX, ChatEncoder
from got_data.train.randomness import derived_seed


@dataclass
class TrainingExample:
    key: str
    kind: str
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    target: torch.Tensor  # [3, R, R] in [-1, 1]
    reference: torch.Tensor  # [3, R, R]
    canvases: torch.Tensor  # [K, 3, R, R]


def _member(sample, role: str):
    member = sample.record.image(role).member
    return open_image(sample.images[member], member, f"sample {sample.key} member {member!r}")


def edit_instruction(instruction: str, rewrites: list[str], probability: float, rng: random.Random) -> str:
    """The instruction, or with `probability` one of its concise rewrites (uniformly)."""
    if rewrites and rng.random() < probability:
        return rng.choice(rewrites)
    return instruction


def turn_instructions(record: MultiTurnRecord, probability: float, rng: random.Random) -> str:
    """A multi-turn record's numbered instructions, each turn's replaced by one of its rewrites with
    `probability`, as a single edit's is."""
    rewrites = record.reinstructions or [[] for _ in record.instructions]
    chosen = [edit_instruction(text, turn, probability, rng) for text, turn in zip(record.instructions, rewrites)]
    return " ".join(f"{i + 1}) {text}" for i, text in enumerate(chosen))


def spatial_boxes_of(record: AnyRecord, which: SpatialBoxes = "edit_regions") -> list[Box]:
    """The boxes that paint a record's spatial canvases, in GoT order: every object of a T2I record; an
    edit's regions, or with `all_objects` every box of its GoT (the regions and the placed objects)."""
    if isinstance(record, T2IRecord) or which == "all_objects":
        return got_boxes(record.got)
    ops = [record.edit] if isinstance(record, EditRecord) else list(record.steps)
    return [box for op in ops for box in op.regions]


def build_example(
    sample, encoder: ChatEncoder, resolution: int, epoch: int = 0, seed: int = 0,
    reinstruction_probability: float = 0.0, spatial_boxes: SpatialBoxes = "edit_regions",
) -> TrainingExample:
    """Everything one training step needs from one ShardSample (see module doc for the roles).

    An edit's instruction choice is seeded by (seed, epoch, key): the same on every rank and on resume."""
    record = sample.record
    if isinstance(record, T2IRecord):
        instruction, source, target_role = record.prompt, None, "image"
    elif isinstance(record, EditRecord):
        rng = random.Random(derived_seed("reinstruct", seed, epoch, sample.key))
        instruction = edit_instruction(record.instruction, record.reinstructions, reinstruction_probability, rng)
        source, target_role = _member(sample, "source"), "target"
    elif isinstance(record, MultiTurnRecord):
        rng = random.Random(derived_seed("reinstruct", seed, epoch, sample.key))
        instruction = turn_instructions(record, reinstruction_probability, rng)
        source, target_role = _member(sample, "source"), record.images[-1].role
    else:
        raise TypeError(f"unsupported record type {type(record).__name__}")
    encoded = encoder.with_got(instruction, source, record.got)
    reference = black_pixels(resolution) if source is None else resize_pixels(source, resolution)
    return TrainingExample(
        key=sample.key,
        kind=record.kind,
        input_ids=encoded.input_ids,
        labels=encoded.labels,
        pixel_values=encoded.pixel_values,
        image_grid_thw=encoded.image_grid_thw,
        target=to_model_range(resize_pixels(_member(sample, target_role), resolution)),
        reference=to_model_range(reference),
        canvases=spatial_canvases(spatial_boxes_of(record, spatial_boxes), resolution),
    )


def collate(examples: list[TrainingExample], pad_id: int) -> dict:
    """Right-padded token batch plus stacked images; canvases flattened with per-sample counts."""
    longest = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), longest), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        attention[i, :n] = 1
    pixels = [e.pixel_values for e in examples if e.pixel_values is not None]
    grids = [e.image_grid_thw for e in examples if e.image_grid_thw is not None]
    return {
        "keys": [e.key for e in examples],
        "kinds": [e.kind for e in examples],
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention,
        "pixel_values": torch.cat(pixels) if pixels else None,
        "image_grid_thw": torch.cat(grids) if grids else None,
        "target": torch.stack([e.target for e in examples]),
        "reference": torch.stack([e.reference for e in examples]),
        "canvases": torch.cat([e.canvases for e in examples]),
        "canvas_counts": torch.tensor([e.canvases.shape[0] for e in examples]),
    }
