"""Generate the sample shards CI validates: valid ones per record kind, and deliberately broken ones.

Deterministic: records are hand-written, images drawn with Pillow, shards made by the project's own
ShardWriter, so rerunning it gives byte-identical tars (a test checks the committed copies for drift).
Broken shards bypass the writer's checks: their tars are written with `tarfile` from tampered JSON.
Their indexes are kept at version 1 (one row per tar member, as shards written before the per-sample
version 2 have), so the validator and readers are proven to keep reading older shards.

    python tests/data/make_test_shards.py [OUT_DIR]     (default: tests/data/shards)
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from got_data.records import (
    WHOLE_IMAGE,
    Annotation,
    Box,
    EditOp,
    EditRecord,
    GroundedObject,
    ImageInfo,
    ModelInfo,
    MultiTurnRecord,
    PlacedObject,
    Provenance,
    SourceInfo,
    StageUsage,
    T2IRecord,
    make_key,
    rel_to_pixels,
    render_got,
)
from got_data.shards import ShardWriter, write_manifest
from got_data.shards.index import IndexRow, read_index
from got_data.shards.layout import TAR_FORMAT, index_filename, member_tarinfo, tar_filename

DEFAULT_OUT = Path(__file__).resolve().parent / "shards"
GOT_DATA_VERSION = "0.1.0"  # fixed, so the committed records do not change with each release
REF_START, REF_END, BOX_START, BOX_END = "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>"
PALETTE = [(200, 60, 50), (40, 110, 190), (240, 190, 40), (60, 160, 80), (150, 80, 170)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def box(x1: int, y1: int, x2: int, y2: int) -> Box:
    return Box(x1=x1, y1=y1, x2=x2, y2=y2)


def ground(phrase: str, *boxes: Box) -> str:
    return f"{REF_START}{phrase}{REF_END}" + "".join(f"{BOX_START}{b.render()}{BOX_END}" for b in boxes)


def draw(width: int, height: int, background: tuple[int, int, int], boxes: list[Box], fmt: str) -> bytes:
    """A small picture with one filled shape per box, so the boxes point at something."""
    image = Image.new("RGB", (width, height), background)
    pen = ImageDraw.Draw(image)
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = rel_to_pixels(b, width, height)
        shape = pen.ellipse if i % 2 else pen.rectangle
        shape((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), fill=PALETTE[i % len(PALETTE)], outline=(20, 20, 20))
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, format="JPEG", quality=80)
    else:
        image.save(out, format="PNG", compress_level=9)
    return out.getvalue()


def image_info(role: str, member: str, data: bytes) -> ImageInfo:
    with Image.open(io.BytesIO(data)) as im:
        return ImageInfo(role=role, member=member, sha256=sha(data), width=im.width, height=im.height,
                         format=im.format, original_sha256=sha(data), normalization=[])


def provenance(pipeline: str, stages: dict[str, tuple[str, int, int]], minute: int) -> Provenance:
    """Provenance as the annotation pipeline fills it: models, prompt hashes, sampling, token counts."""
    vlm = ModelInfo(role="vlm", name="Qwen/Qwen2-VL-7B-Instruct", revision="a7a06a1cc11b4514ce9edcde0e3ca1d16e5ff2fc", family="qwen2-vl")
    llm = ModelInfo(role="llm", name="Qwen/Qwen2.5-7B-Instruct", revision="a09a35458c702b33eeacc393d103063234e8bc28", family="qwen2.5")
    return Provenance(
        pipeline=pipeline,
        pipeline_version="1.0",
        got_data_version=GOT_DATA_VERSION,
        models=[vlm, llm],
        prompt_hashes={stage: sha(f"{pipeline}/{stage}/prompt-v1".encode()) for stage in stages},
        sampling={stage: {"temperature": 0.0, "max_tokens": 1024, "model": model} for stage, (model, _, _) in stages.items()},
        packages={"vllm": "0.32.0", "ray": "2.60.0", "transformers": "5.16.1"},
        tokens={stage: StageUsage(requests=1, prompt_tokens=p, output_tokens=o) for stage, (_, p, o) in stages.items()},
        started_at=datetime(2025, 3, 14, 9, minute, 0, tzinfo=timezone.utc),
        finished_at=datetime(2025, 3, 14, 9, minute, 41, tzinfo=timezone.utc),
    )


T2I_STAGES = {"recaption": ("vlm", 1421, 238), "entities": ("llm", 402, 61), "grounding": ("vlm", 1633, 94)}
EDIT_STAGES = {"describe": ("vlm", 2710, 402), "edit_objects": ("llm", 318, 40), "localize": ("vlm", 1520, 38),
               "reinstruct": ("llm", 290, 72), "assemble": ("llm", 1104, 330)}

T2I_SCENES: list[dict[str, Any]] = [
    {
        "ref": "laion/00017/000173245.jpg",
        "caption": "Firefighter training day at the county station",
        "prompt": "A young firefighter stands beside a red fire engine in front of a brick station.",
        "description": (
            "A bright afternoon scene outside a brick fire station. A young firefighter in a tan turnout coat and a "
            "yellow helmet stands on the left, holding a coiled canvas hose over one shoulder. Beside him, a red fire "
            "engine with polished chrome fittings fills the right half of the frame, its ladder folded along the roof. "
            "A black dalmatian sits on the pavement between them, looking up at the firefighter. Behind them, the "
            "station's tall arched door is open, and a row of helmets hangs on hooks inside. The light is warm and "
            "low, casting long shadows toward the camera."
        ),
        "objects": [
            ("A young firefighter", [box(88, 212, 372, 948)]),
            ("a red fire engine", [box(455, 168, 995, 905)]),
            ("A black dalmatian", [box(330, 640, 512, 930)]),
            ("tall arched door", [box(402, 40, 698, 560)]),
        ],
        "size": (96, 64),
        "background": (170, 120, 90),
    },
    {
        "ref": "journeydb/0421/8f3c2a91.png",
        "caption": None,
        "prompt": "Two red kites over a green hill at dusk, one large and one small.",
        "description": (
            "A wide view of a rolling green hill under a dusky violet sky. Two red kites fly above the hill: a large "
            "diamond-shaped kite high on the left with a long ribbon tail, and a smaller box kite lower on the right. "
            "A lone oak tree stands on the crest of the hill, its crown dark against the fading light, and a narrow "
            "dirt path winds from the bottom edge of the picture up toward the tree. The grass is lit from behind, so "
            "the tops of the blades glow faintly."
        ),
        "objects": [
            ("Two red kites", [box(96, 58, 402, 470), box(640, 300, 811, 498)]),
            ("A lone oak tree", [box(430, 330, 602, 640)]),
            ("a narrow dirt path", [box(280, 600, 560, 999)]),
        ],
        "size": (80, 80),
        "background": (110, 90, 150),
    },
    {
        "ref": "laion/00231/002318871.jpg",
        "caption": "vintage kitchen, morning coffee",
        "prompt": "A sunlit vintage kitchen with a blue kettle on a white stove and a bowl of lemons.",
        "description": (
            "A small vintage kitchen in morning light. On the left, a white enamel stove carries a blue kettle on its "
            "front burner, a thin wisp of steam rising from the spout. A wooden counter runs along the back wall, and "
            "on it sits a ceramic bowl of lemons next to a stack of folded tea towels. Above the counter, a window "
            "with checkered curtains lets sunlight fall across the floor tiles, which alternate black and white."
        ),
        "objects": [
            ("a white enamel stove", [box(20, 380, 380, 990)]),
            ("a blue kettle", [box(120, 260, 300, 430)]),
            ("a ceramic bowl of lemons", [box(520, 470, 700, 600)]),
            ("a window with checkered curtains", [box(450, 40, 900, 380)]),
        ],
        "size": (72, 96),
        "background": (225, 215, 180),
    },
]


def t2i_sample(scene: dict[str, Any], minute: int) -> tuple[T2IRecord, dict[str, bytes]]:
    description = scene["description"]
    annotations = []
    for phrase, boxes in scene["objects"]:
        start = description.index(phrase)
        annotations.append(Annotation(start=start, end=start + len(phrase), boxes=tuple(boxes)))
    got, spans = render_got(description, annotations)
    all_boxes = [b for _, boxes in scene["objects"] for b in boxes]
    data = draw(*scene["size"], scene["background"], all_boxes, "JPEG")
    info = image_info("image", "jpg", data)
    dataset = scene["ref"].split("/")[0]
    record = T2IRecord(
        key=make_key("t2i", dataset, scene["ref"], info.sha256),
        source=SourceInfo(dataset=dataset, input_ref=scene["ref"], original_caption=scene["caption"]),
        images=[info],
        got=got,
        provenance=provenance("t2i-got", T2I_STAGES, minute),
        prompt=scene["prompt"],
        description=description,
        objects=[GroundedObject(phrase=p, boxes=b, span=s) for (p, b), s in zip(scene["objects"], spans)],
    )
    return record, {"jpg": data}


EDIT_CASES: list[dict[str, Any]] = [
    {
        "ref": "omniedit/object_replacement/000481",
        "instruction": "Replace the white mug with a glass of orange juice.",
        "reinstructions": ["Swap the mug for orange juice.", "Put a glass of orange juice where the white mug is."],
        "source_description": "A wooden table on a sunny terrace with a white ceramic mug near its right edge"
                              " and a potted basil plant at the back.",
        "target_description": "A wooden table on a sunny terrace with a tall glass of orange juice near its right edge"
                              " and a potted basil plant at the back.",
        "op": EditOp(edit_type="replace", target_object="white ceramic mug", new_object="glass of orange juice",
                     regions=[box(612, 455, 803, 702)], change="replace the mug with a tall glass of orange juice",
                     object_description="a plain white ceramic mug with a curved handle",
                     new_object_description="a tall clear glass filled with orange juice"),
        "phrase": "the white ceramic mug",
        "placed": [("a potted basil plant", "source", box(420, 80, 560, 330))],  # schema 1.1: other named objects
        "background": (150, 110, 70),
    },
    {
        "ref": "omniedit/style/001920",
        "instruction": "Make it look like a watercolor painting.",
        "reinstructions": ["Watercolor style.", "Repaint the whole photo as a soft watercolor."],
        "source_description": "A harbor at noon with three fishing boats moored at a stone quay and gulls on the bollards.",
        "target_description": "A soft watercolor painting of a harbor with three fishing boats at a stone quay,"
                              " colors bleeding at the edges.",
        "op": EditOp(edit_type="style", target_object="the whole image", regions=[WHOLE_IMAGE],
                     change="render the entire scene in a loose watercolor style"),
        "phrase": "the whole image",
        "background": (90, 140, 180),
    },
    {
        "ref": "omniedit/object_addition/000077",
        "instruction": "Add a red bicycle leaning against the fence.",
        "reinstructions": ["Add a red bike.", "Place a red bicycle against the picket fence on the left."],
        "source_description": "A quiet suburban front yard with a white picket fence along the left side and a lawn in the foreground.",
        "target_description": "A quiet suburban front yard with a red bicycle leaning against the white picket fence on the left.",
        "op": EditOp(edit_type="add", target_object="red bicycle", regions=[box(60, 420, 380, 860)],
                     change="add a red bicycle leaning against the fence",
                     new_object_description="a red city bicycle with a wicker basket"),
        "phrase": "a red bicycle",
        "background": (120, 170, 100),
    },
]


def edit_got(case: dict[str, Any]) -> str:
    op: EditOp = case["op"]
    source = case["source_description"]
    for phrase, _, placed_box in case.get("placed", []):
        source = source.replace(phrase, ground(phrase, placed_box), 1)
    return (
        f"1) The source image shows {source[0].lower()}{source[1:]}\n"
        f"2) The object to edit is {op.target_object}.\n"
        f"3) The region to edit is {ground(case['phrase'], *op.regions)}.\n"
        f"4) The change: {op.change}.\n"
        f"5) The edited image will show {case['target_description'][0].lower()}{case['target_description'][1:]}"
    )


def edit_sample(case: dict[str, Any], minute: int) -> tuple[EditRecord, dict[str, bytes]]:
    op: EditOp = case["op"]
    source = draw(64, 64, case["background"], [], "PNG")
    target = draw(64, 64, case["background"], list(op.regions), "PNG")
    images = [image_info("source", "source.png", source), image_info("target", "target.png", target)]
    got = edit_got(case)
    record = EditRecord(
        key=make_key("edit", "omniedit", case["ref"], images[0].sha256, images[1].sha256),
        source=SourceInfo(dataset="omniedit", input_ref=case["ref"], original_caption=case["instruction"]),
        images=images,
        got=got,
        provenance=provenance("edit-got", EDIT_STAGES, minute),
        instruction=case["instruction"],
        reinstructions=case["reinstructions"],
        source_description=case["source_description"],
        target_description=case["target_description"],
        edit=op,
        objects=placed_objects(got, case["placed"]) if "placed" in case else None,
    )
    return record, {"source.png": source, "target.png": target}


def placed_objects(got: str, placed: list[tuple[str, str, Box]]) -> list[PlacedObject]:
    objects = []
    for phrase, image, placed_box in placed:
        start = got.index(ground(phrase, placed_box)) + len(REF_START)
        objects.append(PlacedObject(phrase=phrase, boxes=[placed_box], span=(start, start + len(phrase)), image=image))
    return objects


MULTITURN_CASES: list[dict[str, Any]] = [
    {
        "ref": "seed-edit-multiturn/003114",
        "source_description": "A living room with a grey sofa under a window, a low coffee table in front of it"
                              " and a floor lamp in the corner.",
        "final_description": "A living room with a mustard yellow sofa under a window, a low coffee table holding a vase of tulips,"
                             " and a floor lamp in the corner.",
        "turns": [
            ("Change the sofa to mustard yellow.", "the grey sofa", box(180, 300, 820, 640),
             EditOp(edit_type="color", target_object="grey sofa", regions=[box(180, 300, 820, 640)],
                    change="recolor the sofa mustard yellow")),
            ("Put a vase of tulips on the coffee table.", "the coffee table", box(330, 600, 690, 820),
             EditOp(edit_type="add", target_object="vase of tulips", regions=[box(330, 600, 690, 820)],
                    change="add a vase of red tulips on the table")),
        ],
        "background": (200, 195, 185),
    },
    {
        "ref": "seed-edit-multiturn/004870",
        "source_description": "A snowy mountain road with a blue car driving toward the camera and pine trees on both sides.",
        "final_description": "A snowy mountain road at night with a blue car, headlights on, driving toward the camera"
                             " past a wooden road sign.",
        "turns": [
            ("Make it night.", "the whole image", WHOLE_IMAGE,
             EditOp(edit_type="lighting", target_object="the whole image", regions=[WHOLE_IMAGE], change="darken the scene to night")),
            ("Turn on the car's headlights.", "the blue car", box(380, 420, 620, 700),
             EditOp(edit_type="attribute", target_object="blue car", regions=[box(380, 420, 620, 700)], change="switch on the headlights")),
            ("Add a wooden road sign on the right.", "the right roadside", box(760, 380, 900, 720),
             EditOp(edit_type="add", target_object="wooden road sign", regions=[box(760, 380, 900, 720)], change="add a wooden road sign")),
        ],
        "background": (230, 235, 240),
    },
    {  # schema 1.2: the steps came as one instruction and the image after the first step is missing
        "ref": "combined-requests/000017",
        "combined_instruction": "Paint the door red, then hang a wreath on it.",
        "step_images": [False, True],
        "source_description": "A white front door with a brass handle between two windows.",
        "final_description": "A red front door with a brass handle and a green wreath, between two windows.",
        "turns": [
            ("Paint the door red.", "the door", box(400, 250, 600, 900),
             EditOp(edit_type="color", target_object="door", regions=[box(400, 250, 600, 900)], change="paint the door red")),
            ("Hang a wreath on the door.", "the top of the door", box(430, 300, 570, 480),
             EditOp(edit_type="add", target_object="wreath", regions=[box(430, 300, 570, 480)], change="hang a green wreath")),
        ],
        "background": (240, 240, 235),
    },
]


def multiturn_sample(case: dict[str, Any], minute: int) -> tuple[MultiTurnRecord, dict[str, bytes]]:
    turns = case["turns"]
    lines = [f"1) The source image shows {case['source_description'][0].lower()}{case['source_description'][1:]}"]
    for i, (_, phrase, region, op) in enumerate(turns):
        lines.append(f"{i + 2}) Turn {i + 1}: edit {ground(phrase, region)}: {op.change}.")
    lines.append(f"{len(turns) + 2}) After all edits the image shows {case['final_description'][0].lower()}{case['final_description'][1:]}")
    source = draw(64, 48, case["background"], [], "JPEG")
    members = {"source.jpg": source}
    infos = [image_info("source", "source.jpg", source)]
    for i in range(len(turns)):
        if not case.get("step_images", [True] * len(turns))[i]:
            continue
        data = draw(64, 48, case["background"], [t[2] for t in turns[: i + 1]], "JPEG")
        members[f"turn{i + 1}.jpg"] = data
        infos.append(image_info(f"turn{i + 1}", f"turn{i + 1}.jpg", data))
    # records written before 1.1 still read and validate; a combined one needs 1.2
    combined = {"schema_version": "1.2", "combined_instruction": case["combined_instruction"],
                "step_images": case["step_images"]} if "step_images" in case else {"schema_version": "1.0"}
    record = MultiTurnRecord(
        **combined,
        key=make_key("multiturn", "seed-edit-multiturn", case["ref"], *(im.sha256 for im in infos)),
        source=SourceInfo(dataset="seed-edit-multiturn", input_ref=case["ref"],
                          original_caption=case.get("combined_instruction", " / ".join(t[0] for t in turns))),
        images=infos,
        got="\n".join(lines),
        provenance=provenance("multiturn-got", EDIT_STAGES, minute),
        instructions=[t[0] for t in turns],
        source_description=case["source_description"],
        final_description=case["final_description"],
        steps=[t[3] for t in turns],
    )
    return record, members


def valid_samples() -> dict[str, list[tuple[Any, dict[str, bytes]]]]:
    return {
        "t2i": [t2i_sample(s, i) for i, s in enumerate(T2I_SCENES)],
        "edit": [edit_sample(c, 10 + i) for i, c in enumerate(EDIT_CASES)],
        "multiturn": [multiturn_sample(c, 20 + i) for i, c in enumerate(MULTITURN_CASES)],
    }


V1_INDEX_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False), pa.field("member", pa.string(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False), pa.field("size", pa.int64(), nullable=False),
    pa.field("kind", pa.string(), nullable=False), pa.field("object_count", pa.int32(), nullable=False),
])


def write_v1_index(path: Path, rows: list[IndexRow]) -> None:
    """A version-1 index: one row per tar member, as got-data wrote it before the per-sample index."""
    columns = {name: [getattr(row, name) for row in rows] for name in V1_INDEX_SCHEMA.names}
    pq.write_table(pa.Table.from_pydict(columns, schema=V1_INDEX_SCHEMA), path, compression="zstd")


def write_raw_shard(folder: Path, samples: list[tuple[str, str, int, list[tuple[str, bytes]]]]) -> None:
    """Write a shard and its index with tarfile directly, skipping every check the writer makes.

    samples: (key, kind, object_count, [(member suffix, bytes), ...]).
    """
    folder.mkdir(parents=True)
    rows = []
    with tarfile.open(folder / tar_filename("got", 0), "w", format=TAR_FORMAT) as tar:
        for key, kind, objects, members in samples:
            for suffix, data in members:
                tar.addfile(member_tarinfo(f"{key}.{suffix}", len(data)), io.BytesIO(data))
                rows.append(IndexRow(key, suffix, sha(data), len(data), kind, objects))
    write_v1_index(folder / index_filename("got", 0), rows)


def as_members(record: Any, images: dict[str, bytes], record_json: bytes | None = None) -> list[tuple[str, bytes]]:
    data = record_json if record_json is not None else record.model_dump_json().encode()
    return [("json", data)] + [(im.member, images[im.member]) for im in record.images]


def tampered(record: Any, change: Any) -> bytes:
    """The record's JSON after `change(dict)` edits it, serialized the way the writer does."""
    data = json.loads(record.model_dump_json())
    change(data)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def write_broken(root: Path, samples: dict[str, list[tuple[Any, dict[str, bytes]]]], valid_root: Path) -> None:
    (good, good_images), (bad, bad_images) = samples["t2i"][0], samples["t2i"][1]
    entry = lambda r, members: (r.key, r.kind, r.object_count(), members)  # noqa: E731

    def box_out_of_range(d: dict[str, Any]) -> None:
        old = Box(**d["objects"][0]["boxes"][0])
        d["objects"][0]["boxes"][0]["x2"] = 1180
        d["got"] = d["got"].replace(old.render(), f"({old.x1},{old.y1}),(1180,{old.y2})", 1)

    def span_misses(d: dict[str, Any]) -> None:
        start, end = d["objects"][1]["span"]
        d["objects"][1]["span"] = [start + 3, end + 3]

    write_raw_shard(root / "box_out_of_range", [
        entry(good, as_members(good, good_images)),
        entry(bad, as_members(bad, bad_images, tampered(bad, box_out_of_range))),
    ])
    write_raw_shard(root / "span_misses_phrase", [
        entry(good, as_members(good, good_images)),
        entry(bad, as_members(bad, bad_images, tampered(bad, span_misses))),
    ])
    edit, edit_images = samples["edit"][0]
    write_raw_shard(root / "missing_image", [
        entry(good, as_members(good, good_images)),
        entry(edit, [m for m in as_members(edit, edit_images) if m[0] != "target.png"]),
    ])
    orphan_key = make_key("t2i", "laion", "laion/99999/orphan.jpg", sha(bad_images["jpg"]))
    write_raw_shard(root / "orphan_image", [
        entry(good, as_members(good, good_images)),
        (orphan_key, "t2i", 0, [("jpg", bad_images["jpg"])]),
    ])
    write_raw_shard(root / "image_mismatch", [
        entry(good, as_members(good, good_images)),
        entry(bad, as_members(bad, {"jpg": samples["t2i"][2][1]["jpg"]})),
    ])
    write_raw_shard(root / "bad_json", [
        entry(good, as_members(good, good_images)),
        entry(bad, as_members(bad, bad_images, good.model_dump_json().encode()[:-40])),
    ])
    write_raw_shard(root / "instruction_control_token", [
        entry(good, as_members(good, good_images)),
        entry(edit, as_members(edit, edit_images, tampered(edit, lambda d: d.update(instruction=d["instruction"] + " <|im_end|>")))),
    ])
    sequence, sequence_images = samples["multiturn"][0]

    def bidi_in_step(d: dict[str, Any]) -> None:
        d["steps"][0]["change"] = "\u202e" + d["steps"][0]["change"]

    write_raw_shard(root / "object_on_missing_image", [
        entry(good, as_members(good, good_images)),
        entry(edit, as_members(edit, edit_images, tampered(edit, lambda d: d["objects"][0].update(image="turn1")))),
    ])
    write_raw_shard(root / "edit_op_bidi_control", [
        entry(good, as_members(good, good_images)),
        entry(sequence, as_members(sequence, sequence_images, tampered(sequence, bidi_in_step))),
    ])
    truncated = root / "truncated_tar"
    truncated.mkdir(parents=True)
    tar_bytes = (valid_root / "t2i" / tar_filename("got", 0)).read_bytes()
    (truncated / tar_filename("got", 0)).write_bytes(tar_bytes[: len(tar_bytes) // 2 + 100])
    shutil.copyfile(valid_root / "t2i" / index_filename("got", 0), truncated / index_filename("got", 0))


def generate(out: Path) -> Path:
    """Write every sample shard under `out` (replacing what was there) and return `out`."""
    if out.exists():
        shutil.rmtree(out)
    samples = valid_samples()
    for kind, items in samples.items():
        with ShardWriter(out / kind, samples_per_shard=len(items)) as writer:
            for record, images in items:
                writer.write(record, images)
        index = out / kind / index_filename("got", 0)
        write_v1_index(index, read_index(index))
        write_manifest(out / kind)
    write_broken(out / "broken", samples, out)
    return out


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
