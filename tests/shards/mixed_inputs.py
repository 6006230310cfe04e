"""Test support: world sets turned into realistic mixed input (JPEG and PNG files, captions on some
images only), annotated by the real pipeline with the world oracle answering."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import TRUTH_FILE, WORLD_SPECS, read_truth, write_world_set

COUNTS = {"t2i": 12, "edit": 8, "multiturn": 8}


def to_jpeg(png: Path) -> Path:
    """Replace a PNG file by a JPEG of the same picture; returns the new path."""
    jpg = png.with_suffix(".jpg")
    buffer = io.BytesIO()
    Image.open(png).convert("RGB").save(buffer, format="JPEG", quality=90)
    jpg.write_bytes(buffer.getvalue())
    png.unlink()
    return jpg


def _mix_t2i(images: Path, set_dir: Path) -> None:
    """Every other image becomes a JPEG (its input_ref changes with its name); every third gets a caption."""
    truth_path = set_dir / TRUTH_FILE
    rows = [json.loads(line) for line in truth_path.read_text().splitlines()]
    for n, row in enumerate(rows):
        path = images / row["input_ref"]
        if n % 2:
            path = to_jpeg(path)
            row["input_ref"] = path.name
        if n % 3 == 0:
            path.with_suffix(".txt").write_text(f"a picture, number {n}")
    truth_path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _mix_manifest(manifest: Path, set_dir: Path) -> None:
    """Alternate images of the pairs and sequences become JPEGs; the manifest follows the new names."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    count = 0

    def mixed(rel: str) -> str:
        nonlocal count
        count += 1
        return str(to_jpeg(set_dir / rel).relative_to(set_dir)) if count % 2 else rel

    for row in rows:
        row["source"] = mixed(row["source"])
        if "target" in row:
            row["target"] = mixed(row["target"])
        for turn in row.get("turns", []):
            turn["image"] = mixed(turn["image"])
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))


def annotate_mixed(root: Path, kind: str) -> Path:
    """Write a mixed world set of `kind` under root/set, annotate it into root/out; returns the output."""
    set_dir = root / "set"
    path = write_world_set(set_dir, kind, COUNTS[kind], seed=5, turns=(1, 3))
    if kind == "t2i":
        _mix_t2i(path, set_dir)
    else:
        _mix_manifest(path, set_dir)
    out = root / "out"
    annotate_with_oracle(load_spec(WORLD_SPECS[kind]), kind, path, read_truth(set_dir), out)
    return out
