"""Make the bundled edit examples from the bundled photographs (got_data/sample_data/).

Each edit is done by hand with Pillow (recolouring an object, pasting a coin, a global filter), so
the pairs are real before/after images with a known edit, small enough to commit. Written as
Parquet manifests with the images embedded, so the sample folder stays a plain T2I image folder:

    edit_pairs.parquet       source, target (JPEG bytes), instruction, edit_type
    multiturn_edits.parquet  source (JPEG bytes), turns: [{instruction, image, edit_type}]

    python tests/data/make_sample_edits.py [OUT_DIR]     (default: got_data/sample_data)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFilter, ImageOps

SAMPLES = Path(__file__).resolve().parents[2] / "got_data" / "sample_data"
LONG_SIDE = 192
QUALITY = 80


def load(name: str) -> Image.Image:
    img = Image.open(SAMPLES / name).convert("RGB")
    scale = LONG_SIDE / max(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)


def jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def recolor_red_to_blue(img: Image.Image) -> Image.Image:
    """Swap red and blue where a bright red clearly dominates green, inside the ellipse around the cup
    and saucer (not the wooden table)."""
    a = np.asarray(img).astype(np.int16)
    area = Image.new("L", img.size, 0)
    ImageDraw.Draw(area).ellipse((0.1 * img.width, 0.05 * img.height, 0.85 * img.width, img.height), fill=255)
    mask = (a[..., 0] > 2.2 * a[..., 1] + 10) & (a[..., 0] > 90) & (np.asarray(area) > 0)
    out = a.copy()
    out[mask, 0], out[mask, 2] = a[mask, 2], a[mask, 0]
    return Image.fromarray(out.astype(np.uint8), "RGB")


def recolor_eyes(img: Image.Image) -> Image.Image:
    """Turn the cat's yellow-green eyes turquoise (channels rotated inside two eye ellipses)."""
    s = img.width / 384
    mask = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(mask)
    for box in ((112, 72, 178, 128), (246, 92, 294, 140)):
        draw.ellipse([round(v * s) for v in box], fill=255)
    a = np.asarray(img)
    swapped = Image.fromarray(a[..., [2, 1, 0]].copy(), "RGB")
    return Image.composite(swapped, img, mask)


def coin(size: int) -> tuple[Image.Image, Image.Image]:
    """A coin cut from coins.jpg, with its round mask."""
    coins = Image.open(SAMPLES / "coins.jpg").convert("RGB")
    patch = coins.crop((18, 28, 72, 82)).resize((size, size), Image.LANCZOS)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((1, 1, size - 2, size - 2), fill=255)
    return patch, mask


def paste_coin(img: Image.Image, center: tuple[float, float], size: int) -> Image.Image:
    patch, mask = coin(size)
    out = img.copy()
    out.paste(patch, (round(center[0] * img.width - size / 2), round(center[1] * img.height - size / 2)), mask)
    return out


def warm_light(img: Image.Image) -> Image.Image:
    a = np.asarray(img).astype(np.float32)
    a = a * np.array([1.15, 0.95, 0.7]) + np.array([18, 4, 0])
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def sketch(img: Image.Image) -> Image.Image:
    gray = ImageOps.grayscale(img).filter(ImageFilter.CONTOUR)
    return ImageOps.autocontrast(gray).convert("RGB")


def main(out: Path) -> None:
    cat, coffee, cameraman = load("cat.jpg"), load("coffee.jpg"), load("cameraman.jpg")
    rocket, astronaut = load("rocket.jpg"), load("astronaut.jpg")
    pairs = [
        (coffee, recolor_red_to_blue(coffee), "Turn the red cup and saucer blue", "color"),
        (cat, recolor_eyes(cat), "Give the cat turquoise eyes", "attribute_modification"),
        (cameraman, paste_coin(cameraman, (0.82, 0.18), 36), "Add a silver coin floating in the sky", "object_addition"),
        (rocket, sketch(rocket), "Make it look like a pencil sketch", "style"),
        (astronaut, warm_light(astronaut), "Bathe the scene in warm sunset light", "lighting"),
    ]
    table = pa.table({
        "source": [jpeg(s) for s, _, _, _ in pairs],
        "target": [jpeg(t) for _, t, _, _ in pairs],
        "instruction": [i for _, _, i, _ in pairs],
        "edit_type": [e for _, _, _, e in pairs],
    })
    pq.write_table(table, out / "edit_pairs.parquet", compression="none")

    blue = recolor_red_to_blue(coffee)
    turns = [
        {"instruction": "Turn the red cup and saucer blue", "image": jpeg(blue), "edit_type": "color"},
        {"instruction": "Add a coin on the table at the top right", "image": jpeg(paste_coin(blue, (0.85, 0.2), 30)),
         "edit_type": "add"},
    ]
    sequences = pa.table({"source": [jpeg(coffee)], "turns": [turns]})
    pq.write_table(sequences, out / "multiturn_edits.parquet", compression="none")
    print(f"wrote {out / 'edit_pairs.parquet'} and {out / 'multiturn_edits.parquet'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES)
