"""Drawings while training, on one page: rank 0 draws a fixed, seeded set of records every N steps and
writes `eval.html` in the run folder with each drawing's GoT boxes over it and the loss curves.

Why: a loss that falls says little about whether the boxes steer the drawing; seeing the same prompts
and edits drawn step after step, boxes on top, does.
"""

from __future__ import annotations

import csv
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from got_data.records import EditRecord, MultiTurnRecord, rel_to_pixels
from got_data.train.conditioning import MASK_COLORS, got_boxes, open_image
from got_data.train.config import EvaluationSettings

EVAL_PAGE = "eval.html"
EVAL_FOLDER = "eval"
SHOWN_SIZE = 192  # pixels a drawing is shown at (nearest-neighbour upscale of small training sizes)


@dataclass(frozen=True)
class EvalItem:
    key: str
    kind: str
    instruction: str
    got: str
    source: Image.Image | None


def eval_items(samples) -> list[EvalItem]:
    """What to draw from each held-out record: its prompt or instruction, its GoT, its source image."""
    items = []
    for sample in samples:
        record = sample.record
        source = None
        if isinstance(record, (EditRecord, MultiTurnRecord)):
            member = record.image("source").member
            source = open_image(sample.images[member], member, f"sample {sample.key} member {member!r}")
        if isinstance(record, EditRecord):
            instruction = record.instruction
        elif isinstance(record, MultiTurnRecord):
            instruction = " ".join(f"{i + 1}) {t}" for i, t in enumerate(record.instructions))
        else:
            instruction = record.prompt
        items.append(EvalItem(sample.key, record.kind, instruction, record.got, source))
    return items


def with_boxes(image: Image.Image, got: str) -> Image.Image:
    """The drawing enlarged to SHOWN_SIZE with each GoT box outlined in its mask colour."""
    shown = image.convert("RGB").resize((SHOWN_SIZE, SHOWN_SIZE), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(shown)
    for i, box in enumerate(got_boxes(got)):
        draw.rectangle(rel_to_pixels(box, SHOWN_SIZE, SHOWN_SIZE), outline=MASK_COLORS[i % len(MASK_COLORS)], width=2)
    return shown


def draw_evaluation(generator, items: list[EvalItem], settings: EvaluationSettings, size: int, step: int,
                    run_dir: Path) -> None:
    """Draw every item with `generator` (a GoTGenerator), save the images, rewrite the page."""
    folder = run_dir / EVAL_FOLDER / f"step-{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        image = generator.draw(item.instruction, item.got, item.source, size, size, settings.steps, seed=settings.seed)
        with_boxes(image, item.got).save(folder / f"{item.key}.png")
    write_page(run_dir, items)


def _curve(points: list[tuple[int, float]], color: str, x_max: int, y_min: float, y_max: float) -> str:
    width, height = 600, 200
    span = (y_max - y_min) or 1.0
    coords = " ".join(f"{x / max(x_max, 1) * width:.1f},{height - (y - y_min) / span * height:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>'


def loss_curves(run_dir: Path) -> str:
    """An SVG of the training loss (blue) and the validation loss (orange) over steps."""
    from got_data.train.trainer import METRICS_FILE, VALIDATION_FILE

    train, validation = [], []
    if (run_dir / METRICS_FILE).is_file():
        train = [(r["step"], r["loss"]) for r in map(json.loads, (run_dir / METRICS_FILE).read_text().splitlines())]
    if (run_dir / VALIDATION_FILE).is_file():
        rows = csv.DictReader((run_dir / VALIDATION_FILE).read_text().splitlines())
        validation = [(int(r["step"]), float(r["loss"])) for r in rows]
    points = train + validation
    if not points:
        return "<p>no losses logged yet</p>"
    x_max = max(x for x, _ in points)
    y_min, y_max = min(y for _, y in points), max(y for _, y in points)
    lines = _curve(train, "#1f77b4", x_max, y_min, y_max) + (_curve(validation, "#ff7f0e", x_max, y_min, y_max)
                                                              if validation else "")
    return (f'<svg width="600" height="200" viewBox="0 0 600 200" style="border:1px solid #ccc">{lines}</svg>'
            f"<p>loss from {y_min:.4f} to {y_max:.4f} over {x_max} steps: "
            '<span style="color:#1f77b4">training</span>, <span style="color:#ff7f0e">validation</span></p>')


def write_page(run_dir: Path, items: list[EvalItem]) -> Path:
    """`eval.html`: the loss curves, then one row of drawings per evaluated step, newest first."""
    steps = sorted((p for p in (run_dir / EVAL_FOLDER).glob("step-*") if p.is_dir()), reverse=True)
    rows = []
    for folder in steps:
        cells = "".join(
            f'<figure><img src="{EVAL_FOLDER}/{folder.name}/{html.escape(item.key)}.png" width="{SHOWN_SIZE}">'
            f"<figcaption>{html.escape(item.kind)}: {html.escape(item.instruction)}</figcaption></figure>"
            for item in items if (folder / f"{item.key}.png").is_file()
        )
        rows.append(f"<h2>{html.escape(folder.name)}</h2><div class=row>{cells}</div>")
    page = (
        "<!doctype html><meta charset=utf-8><title>training evaluation</title>"
        "<style>.row{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:200px;font:12px sans-serif}</style>"
        f"<h1>{html.escape(run_dir.name)}</h1>{loss_curves(run_dir)}{''.join(rows)}"
    )
    path = run_dir / EVAL_PAGE
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
