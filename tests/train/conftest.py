"""Tiny GoT shards (T2I and edit, written with the project's ShardWriter) and tiny training configs."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from got_data.records import (
    Annotation,
    Box,
    EditOp,
    EditRecord,
    GroundedObject,
    ImageInfo,
    Provenance,
    SourceInfo,
    T2IRecord,
    make_key,
    rel_to_pixels,
    render_got,
)
from got_data.shards.writer import ShardWriter

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
OBJECTS = [("red square", (220, 40, 40)), ("blue disc", (40, 60, 220)), ("green bar", (40, 200, 60))]
SIZE = (64, 48)


def _provenance(kind: str) -> Provenance:
    return Provenance(pipeline=kind, pipeline_version="1", got_data_version="0.1.0", started_at=NOW, finished_at=NOW)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _info(role: str, member: str, data: bytes, fmt: str) -> ImageInfo:
    sha = hashlib.sha256(data).hexdigest()
    return ImageInfo(role=role, member=member, sha256=sha, width=SIZE[0], height=SIZE[1], format=fmt, original_sha256=sha)


def _random_box(rng: random.Random) -> Box:
    x1, y1 = rng.randrange(0, 600), rng.randrange(0, 600)
    return Box(x1=x1, y1=y1, x2=x1 + rng.randrange(150, 399), y2=y1 + rng.randrange(150, 399))


def _draw(objects: list[tuple[tuple[int, int, int], Box]], background=(235, 230, 210)) -> Image.Image:
    img = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(img)
    for color, box in objects:
        draw.rectangle(rel_to_pixels(box, *SIZE), fill=color)
    return img


def make_t2i(i: int, rng: random.Random) -> tuple[T2IRecord, dict[str, bytes]]:
    chosen = rng.sample(OBJECTS, 2)
    boxes = [_random_box(rng) for _ in chosen]
    description = f"A picture with a {chosen[0][0]} and a {chosen[1][0]} on a pale background."
    anns = []
    for (phrase, _), box in zip(chosen, boxes):
        start = description.index(phrase)
        anns.append(Annotation(start, start + len(phrase), (box,)))
    got, spans = render_got(description, anns)
    data = _encode(_draw([(c, b) for (_, c), b in zip(chosen, boxes)]), "JPEG")
    info = _info("image", "jpg", data, "JPEG")
    record = T2IRecord(
        key=make_key("t2i", "tiny", f"t2i-{i}", info.sha256),
        source=SourceInfo(dataset="tiny", input_ref=f"t2i-{i}"),
        images=[info],
        got=got,
        provenance=_provenance("t2i"),
        prompt=f"a {chosen[0][0]} and a {chosen[1][0]}",
        description=description,
        objects=[GroundedObject(phrase=p, boxes=[b], span=s) for (p, _), b, s in zip(chosen, boxes, spans)],
    )
    return record, {"jpg": data}


def make_edit(i: int, rng: random.Random) -> tuple[EditRecord, dict[str, bytes]]:
    (phrase, color), (_, new_color) = rng.sample(OBJECTS, 2)
    box = _random_box(rng)
    source = _encode(_draw([(color, box)]), "PNG")
    target = _encode(_draw([(new_color, box)]), "PNG")
    src_info, tgt_info = _info("source", "source.png", source, "PNG"), _info("target", "target.png", target, "PNG")
    got = (
        f"1) The source image shows a {phrase} on a pale background. 2) The edited object is the {phrase}. "
        f"3) Region: <|object_ref_start|>the {phrase}<|object_ref_end|><|box_start|>{box.render()}<|box_end|>. "
        "4) Change its colour. 5) The edited image shows the same shape in a new colour."
    )
    record = EditRecord(
        key=make_key("edit", "tiny", f"edit-{i}", src_info.sha256, tgt_info.sha256),
        source=SourceInfo(dataset="tiny", input_ref=f"edit-{i}"),
        images=[src_info, tgt_info],
        got=got,
        provenance=_provenance("edit"),
        instruction=f"recolour the {phrase}",
        source_description=f"A {phrase} on a pale background.",
        target_description="The same shape in a new colour.",
        edit=EditOp(target_object=phrase, regions=[box], change="recolour"),
    )
    return record, {"source.png": source, "target.png": target}


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny T2I (2 shards x 8) and edit (2 shards x 6) shards."""
    root = tmp_path_factory.mktemp("train-shards")
    rng = random.Random(7)
    out = {}
    for kind, make, count, per in (("t2i", make_t2i, 16, 8), ("edit", make_edit, 12, 6)):
        with ShardWriter(root / kind, name=kind, samples_per_shard=per) as writer:
            for i in range(count):
                writer.write(*make(i, rng))
        out[kind] = root / kind
    return out


def tiny_config_dict(shards: dict[str, Path], run_dir: Path, **train) -> dict:
    config = yaml.safe_load((Path(__file__).parents[2] / "pipelines" / "train-tiny.yaml").read_text())
    config["data"]["sources"] = [
        {"name": "t2i", "shards": [str(shards["t2i"] / "*.tar")], "weight": 0.6},
        {"name": "edit", "shards": [str(shards["edit"])], "weight": 0.4},
    ]
    config["checkpoint"]["dir"] = str(run_dir)
    config["train"].update(train)
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
