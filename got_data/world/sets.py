"""World sets on disk: pipeline inputs in the formats `got-data annotate` reads, plus `truth.jsonl`.

- t2i: `images/scene-NNNNN.png` (a folder input; input_ref is the relative path);
- edit: `edits.jsonl` (source, target, instruction) with `pairs/NNNNN/{source,target}.png`;
- multiturn: `sequences.jsonl` (source, turns) with `sequences/NNNNN/{source,turnK}.png`; with
  `combined`, each row gives its turns as one instruction (source, instruction, final, intermediates)
  and keeps each intermediate image with probability 1/2 (drawn apart from the scenes, so a combined
  set holds the same sequences as the per-turn set of its seed); the truth keeps the ordered edits and
  says which steps have their image (`step_images`).

`truth.jsonl` holds one line per input, keyed by the input_ref the pipeline will give it, with
everything needed to rebuild the scenes and edits (so the scorer and the oracle share one truth).
A set is a pure function of (kind, count, seed, sizes).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from got_data.errors import InputError
from got_data.records.boxes import Box
from got_data.records.models import RECORD_KINDS
from got_data.spec import PipelineSpec
from got_data.world.edits import Edit, combined_instruction, random_edit, random_sequence
from got_data.world.scene import IMAGE_SIZES, Scene, Shape, random_scene

KINDS = RECORD_KINDS  # every record kind has a world set
TRUTH_FILE = "truth.jsonl"
INPUT_NAMES = {"t2i": "images", "edit": "edits.jsonl", "multiturn": "sequences.jsonl"}
# The pipeline spec of each kind sized for the world's trained tiny models.
WORLD_SPECS = {"t2i": "t2i-world.yaml", "edit": "edit-world.yaml", "multiturn": "multiturn-world.yaml"}
# The sets the fidelity bench and floors score: name -> (kind, write_world_set's options)
NAMED_SETS: dict[str, tuple[str, dict[str, bool]]] = {
    "t2i": ("t2i", {}), "t2i-repeats": ("t2i", {"repeats": True}), "edit": ("edit", {}),
    "multiturn": ("multiturn", {}), "multiturn-combined": ("multiturn", {"combined": True})}


def for_world_scenes(spec: PipelineSpec) -> PipelineSpec:
    """`spec` with its minimum image side lowered to the world's smallest scene: a real spec (512)
    would refuse most world scenes, and what a world run of a real spec checks is its prompts, answer
    lengths and pixel budget."""
    return spec.model_copy(update={"min_image_side": min(spec.min_image_side, min(map(min, IMAGE_SIZES)))})


def scene_to_dict(scene: Scene) -> dict[str, Any]:
    data = asdict(scene)
    data["objects"] = [{**asdict(o), "phrase": o.phrase, "rel_box": list(scene.rel_box(o).as_tuple())}
                       for o in scene.objects]
    data.update(description=scene.description(), summary=scene.summary(), prompt=scene.prompt())
    return data


def scene_from_dict(data: dict[str, Any]) -> Scene:
    objects = tuple(Shape(color=o["color"], shape=o["shape"], box=tuple(o["box"])) for o in data["objects"])
    return Scene(width=data["width"], height=data["height"], background=data["background"], objects=objects,
                 grayscale=data.get("grayscale", False))


def edit_to_dict(edit: Edit) -> dict[str, Any]:
    data = {k: v for k, v in asdict(edit).items() if k not in ("before", "after", "region")}
    data.update(region=list(edit.region.as_tuple()), before=scene_to_dict(edit.before), after=scene_to_dict(edit.after))
    return data


def edit_from_dict(data: dict[str, Any]) -> Edit:
    fields = {k: v for k, v in data.items() if k not in ("before", "after", "region")}
    x1, y1, x2, y2 = data["region"]
    return Edit(**fields, before=scene_from_dict(data["before"]), after=scene_from_dict(data["after"]),
                region=Box(x1=x1, y1=y1, x2=x2, y2=y2))


def _save(image_scene: Scene, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image_scene.render().save(path)
    return str(path)


def write_named_set(out: str | Path, name: str, count: int, seed: int) -> Path:
    """`write_world_set` of one of the `NAMED_SETS`."""
    kind, options = NAMED_SETS[name]
    return write_world_set(out, kind, count, seed=seed, repeats=options.get("repeats", False),
                           combined=options.get("combined", False))


def write_world_set(out: str | Path, kind: str, count: int, seed: int = 0,
                    sizes: tuple[tuple[int, int], ...] = IMAGE_SIZES, turns: tuple[int, int] = (2, 3),
                    objects: int | None = None, repeats: bool = False, combined: bool = False) -> Path:
    """Write `count` inputs of `kind` under `out` and their truth; returns the path to annotate
    (the images folder or the manifest). `objects` fixes the objects per scene (default 1-4);
    `repeats` (t2i only) makes every scene hold one colour and shape two or three times;
    `combined` (multiturn only) gives each sequence's turns as one instruction."""
    if kind not in KINDS:
        raise InputError(f"unknown world set kind {kind!r}; use one of {KINDS}")
    if repeats and kind != "t2i":
        raise InputError("repeated objects are a t2i world set: an edit of \"the red circle\" must name one object")
    if combined and kind != "multiturn":
        raise InputError("a combined instruction is a multiturn world set: use --kind multiturn")
    kept = random.Random(f"got-data-world/combined/{seed}")  # which intermediate images a combined set keeps
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"got-data-world/{kind}/{seed}" + (f"/objects={objects}" if objects else "")
                        + ("/repeats" if repeats else ""))
    truth_lines: list[dict[str, Any]] = []
    manifest_lines: list[dict[str, Any]] = []
    for n in range(count):
        scene = random_scene(rng, size=sizes[n % len(sizes)], count=objects, repeats=repeats)
        if kind == "t2i":
            ref = f"scene-{n:05d}.png"
            _save(scene, out / "images" / ref)
            truth_lines.append({"input_ref": ref, "kind": kind, "scene": scene_to_dict(scene)})
            continue
        ref = f"{INPUT_NAMES[kind]}#row={n}"
        if kind == "edit":
            edit = random_edit(rng, scene)
            folder = out / "pairs" / f"{n:05d}"
            _save(edit.before, folder / "source.png")
            _save(edit.after, folder / "target.png")
            manifest_lines.append({"source": f"pairs/{n:05d}/source.png", "target": f"pairs/{n:05d}/target.png",
                                   "instruction": edit.instruction})
            truth_lines.append({"input_ref": ref, "kind": kind, "edits": [edit_to_dict(edit)]})
        else:
            edits = random_sequence(rng, scene, rng.randint(*turns))
            folder = out / "sequences" / f"{n:05d}"
            _save(scene, folder / "source.png")
            present = [True] * len(edits)
            if combined:
                present = [kept.random() < 0.5 for _ in edits[:-1]] + [True]
            images = {k: f"sequences/{n:05d}/turn{k}.png" for k, there in enumerate(present, start=1) if there}
            for k, image in images.items():
                _save(edits[k - 1].after, out / image)
            row: dict[str, Any] = {"source": f"sequences/{n:05d}/source.png"}
            truth: dict[str, Any] = {"input_ref": ref, "kind": kind, "edits": [edit_to_dict(e) for e in edits]}
            if combined:
                row.update(instruction=combined_instruction(edits), final=images.pop(len(edits)),
                           intermediates={str(k): image for k, image in images.items()})
                truth.update(combined=True, step_images=present)
            else:
                row["turns"] = [{"instruction": e.instruction, "image": images[k]} for k, e in enumerate(edits, start=1)]
            manifest_lines.append(row)
            truth_lines.append(truth)
    _write_jsonl(out / TRUTH_FILE, truth_lines)
    if kind == "t2i":
        return out / "images"
    _write_jsonl(out / INPUT_NAMES[kind], manifest_lines)
    return out / INPUT_NAMES[kind]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    tmp.replace(path)


def read_truth(path: str | Path) -> dict[str, dict[str, Any]]:
    """truth.jsonl (or the folder holding it) -> {input_ref: truth line}."""
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    if not path.is_file():
        raise InputError(f"no truth file at {path}: write a world set with `got-data world make` first")
    truth = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            truth[row["input_ref"]] = row
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number} is not a truth line: {exc}") from exc
    return truth
