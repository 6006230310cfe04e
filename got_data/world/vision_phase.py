"""The world VLM's first phase: its vision tower learns, token by token, what each image token shows.

Why: trained from the stages' answers alone, the tiny VLM learned to box *an* object but never which
one the phrase named (picks at chance, docs/PERFORMANCE.md). Part of the cause is that answers are
a weak, late signal for the vision tower. Here every merged image token (28x28 model pixels) gets
its own targets, known from the scene: the colour and shape of the object under it (or none), the
background colour, that object's box and the token's own place. A linear probe on the tower's
output is fitted to them, and the tower is then frozen, so the language model later reads features
in which colour, shape and box are plainly there.

Samples are drawn fresh from the world generator (seeded), as the pipelines would show them: whole
scenes at the model's pixel budget, some in black and white, and crops around one object as the
crop_describe stage cuts them. Crops carry no box or place targets: the ramp in their pixels says
where they were cut from, not where things are in the crop.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from got_data.records.boxes import smart_resize
from got_data.world.scene import BACKGROUNDS, COLORS, SHAPES, Scene, random_scene

TOKEN_PIXELS = 28  # one merged token: 2x2 patches of 14 pixels
MIN_COVER = 0.15  # share of a token an object must cover for the token to be that object's
CROP_SHARE = 0.2  # of the samples: crops around one object
GRAYSCALE_SHARE = 0.1  # of the samples: whole scenes in black and white
_COLORS, _SHAPES, _BACKGROUNDS = list(COLORS), list(SHAPES), list(BACKGROUNDS)
# probe outputs: colour classes + none, shape classes + none, background classes, box (4), place (2)
_SPLITS = (len(_COLORS) + 1, len(_SHAPES) + 1, len(_BACKGROUNDS), 4, 2)


@dataclass
class TokenTargets:
    """Per merged token, in the tower's output order (rows of tokens, left to right)."""

    color: list[int]  # index into COLORS, or len(COLORS) for no object
    shape: list[int]  # index into SHAPES, or len(SHAPES)
    background: list[int]
    box: list[tuple[float, float, float, float] | None]  # the object's relative box (0-1); None: no object or a crop
    place: list[tuple[float, float] | None]  # the token centre (0-1); None on crops


def token_targets(scene: Scene, mask: np.ndarray, placed: bool) -> TokenTargets:
    """Targets for an image whose label mask (at the model's size, multiples of 28) is `mask`;
    `placed` is False for crops, whose boxes and places are not the scene's."""
    rows, cols = mask.shape[0] // TOKEN_PIXELS, mask.shape[1] // TOKEN_PIXELS
    targets = TokenTargets([], [], [], [], [])
    for r in range(rows):
        for c in range(cols):
            cell = mask[r * TOKEN_PIXELS:(r + 1) * TOKEN_PIXELS, c * TOKEN_PIXELS:(c + 1) * TOKEN_PIXELS]
            counts = np.bincount(cell.ravel(), minlength=len(scene.objects) + 1)[1:]
            index = int(np.argmax(counts)) if counts.size else 0
            obj = scene.objects[index] if counts.size and counts[index] >= MIN_COVER * cell.size else None
            targets.color.append(_COLORS.index(obj.color) if obj else len(_COLORS))
            targets.shape.append(_SHAPES.index(obj.shape) if obj else len(_SHAPES))
            targets.background.append(_BACKGROUNDS.index(scene.background))
            box = scene.rel_box(obj) if obj and placed else None
            targets.box.append((box.x1 / 1000, box.y1 / 1000, box.x2 / 1000, box.y2 / 1000) if box else None)
            targets.place.append(((c + 0.5) / cols, (r + 0.5) / rows) if placed else None)
    return targets


def _at_model_size(image: Image.Image, mask: Image.Image, bounds: dict[str, int]) -> tuple[Image.Image, np.ndarray]:
    height, width = smart_resize(image.height, image.width, **bounds)
    return image.resize((width, height), Image.Resampling.BICUBIC), np.asarray(mask.resize((width, height), Image.Resampling.NEAREST))


def vision_sample(rng: random.Random, bounds: dict[str, int]) -> tuple[Image.Image, TokenTargets]:
    """One training picture at the model's size and its token targets."""
    from got_data.records.boxes import crop_pixels

    scene = random_scene(rng)
    draw = rng.random()
    if draw < GRAYSCALE_SHARE:
        scene = replace(scene, grayscale=True)
    image, mask = _at_model_size(scene.render(), scene.label_mask(), bounds)
    if draw < 1 - CROP_SHARE or not scene.objects:
        return image, token_targets(scene, mask, placed=True)
    # a crop as crop_describe cuts it from the model's copy, then at the model's size again
    rect = crop_pixels(scene.rel_box(rng.choice(scene.objects)), image.width, image.height)
    crop, crop_mask = _at_model_size(image.crop(rect), Image.fromarray(mask).crop(rect), bounds)
    return crop, token_targets(scene, crop_mask, placed=False)


def probe_loss(outputs: Any, targets: list[TokenTargets]) -> Any:
    """Cross-entropy on the classes, L1 on boxes and places where they are known."""
    import torch
    import torch.nn.functional as F

    color, shape, background, box, place = outputs.split(_SPLITS, dim=-1)
    flat = {name: [v for t in targets for v in getattr(t, name)] for name in ("color", "shape", "background", "box", "place")}
    loss = (F.cross_entropy(color, torch.tensor(flat["color"])) + F.cross_entropy(shape, torch.tensor(flat["shape"]))
            + F.cross_entropy(background, torch.tensor(flat["background"])))
    for name, predicted in (("box", box), ("place", place)):
        known = [i for i, v in enumerate(flat[name]) if v is not None]
        if known:
            truth = torch.tensor([flat[name][i] for i in known])
            loss = loss + 5.0 * F.l1_loss(predicted[known], truth)
    return loss


def probe_scores(outputs: Any, targets: list[TokenTargets]) -> dict[str, float]:
    """Accuracy of colour and shape on object tokens, mean IoU of the boxes there."""
    import torch

    from got_data.records.boxes import Box

    color, shape, _, box, _ = outputs.split(_SPLITS, dim=-1)
    truth_color = torch.tensor([v for t in targets for v in t.color])
    truth_shape = torch.tensor([v for t in targets for v in t.shape])
    on_object = truth_color < len(_COLORS)
    boxes = [v for t in targets for v in t.box]
    ious = []
    for i, truth in enumerate(boxes):
        if truth is not None:
            x1, y1, x2, y2 = (min(999, max(0, round(float(v) * 1000))) for v in box[i])
            t1, u1, t2, u2 = (round(v * 1000) for v in truth)
            if x2 > x1 and y2 > y1:
                ious.append(Box(x1=x1, y1=y1, x2=x2, y2=y2).iou(Box(x1=t1, y1=u1, x2=t2, y2=u2)))
            else:
                ious.append(0.0)
    return {"color": (color.argmax(-1) == truth_color)[on_object].float().mean().item(),
            "shape": (shape.argmax(-1) == truth_shape)[on_object].float().mean().item(),
            "box_iou": sum(ious) / len(ious) if ious else 0.0}


@dataclass
class VisionPhase:
    """Steps, batch and learning rate of the vision phase."""

    steps: int = 2500
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    held_out: int = 64  # pictures scored at the end (seed + 1)


def train_vision_tower(model: Any, plan: VisionPhase, bounds: dict[str, int], seed: int,
                       progress: Callable[[int, int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Fit the tower and a linear probe to the token targets, then freeze the tower. Returns the
    final loss and the probe's scores on held-out pictures."""
    import torch
    from transformers import Qwen2VLImageProcessor

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tower = model.model.visual
    processor = Qwen2VLImageProcessor(**bounds)
    probe = torch.nn.Linear(tower.merger.mlp[-1].out_features, sum(_SPLITS))
    parameters = list(tower.parameters()) + list(probe.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=plan.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / plan.warmup_steps)
                                                  * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / plan.steps))))

    def run(samples: list[tuple[Image.Image, TokenTargets]]) -> Any:
        pixels = processor(images=[image for image, _ in samples], return_tensors="pt")
        return probe(tower(pixels["pixel_values"], grid_thw=pixels["image_grid_thw"]).pooler_output)

    tower.train()
    recent: list[float] = []
    started = time.monotonic()
    for step in range(plan.steps):
        samples = [vision_sample(rng, bounds) for _ in range(plan.batch_size)]
        loss = probe_loss(run(samples), [t for _, t in samples])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        recent = (recent + [loss.item()])[-10:]
        if progress is not None and (step + 1) % 50 == 0:
            progress(step + 1, plan.steps, {"tokens": sum(recent) / len(recent)})
    tower.eval()
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
    held_out_rng = random.Random(seed + 1)
    held_out = [vision_sample(held_out_rng, bounds) for _ in range(plan.held_out)]
    with torch.no_grad():
        scores = probe_scores(run(held_out), [t for _, t in held_out])
    return {"final_loss": sum(recent) / max(1, len(recent)), "seconds": time.monotonic() - started, **scores}
