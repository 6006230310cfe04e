"""Known-answer training of the SSGM: does a drawn object's colour land inside its GoT box, and follow the
box when the box moves?

The world knows where every object is, so the spatial guidance is scored without a judge. The tiny GoT
model trains on oracle-annotated world shards (one object per scene), then draws held-out scenes from
their true GoT. At the object's pixels the drawing's mean colour is matched to the nearest candidate:
the object in each world colour, or no object (the background there); a box hit is the true colour.
Then the box in the GoT moves to the farthest corner (the text is left as it is, as when a user drags a
box) and the scene is drawn again: the colour must land in the new box and leave the old one. The same
recipe with `model.spatial_guidance: false` (the paper's "no SSGM" row) sees the boxes only as text.

Candidates are rendered by the world itself at the training resolution (position ramp included), so the
score compares like with like. The tiny diffusion parts have random weights: a tiny VAE is fitted on the
world's training pictures first (`got_data/train/tiny_vae.py`), and the SSGM trains and draws through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from got_data.errors import InputError
from got_data.records import Annotation, T2IRecord, parse_got, render_got
from got_data.train.conditioning import resize_pixels, to_model_range
from got_data.world.scene import COLORS, Scene, Shape

NO_OBJECT = "none"
SCENE_SIZE = 224  # square scenes: resizing to the training resolution keeps shapes and boxes
HELD_OUT_SEED_OFFSET = 1000


@dataclass(frozen=True)
class KnownAnswerSettings:
    """Sizes of the experiment; the defaults run in about ten minutes on two cores (`bench/train_fidelity.py`)."""

    train_scenes: int = 256
    held_out_scenes: int = 32
    resolution: int = 32
    vae_steps: int = 600
    ssgm_steps: int = 1200
    batch_size: int = 8
    lr: float = 2e-3
    ce_weight: float = 0.1  # the GoT's cross-entropy, light: the drawings here come from given GoTs
    lora_alpha: int = 16  # LoRA r 8: alpha 16 doubles its update
    sample_steps: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Candidates:
    """Where an object is at the training resolution, and the mean colour each candidate would give there."""

    mask: np.ndarray  # bool [R, R]
    colours: dict[str, np.ndarray]  # world colour name or NO_OBJECT -> mean RGB over the mask


def object_pixels(scene: Scene, obj: Shape, resolution: int) -> np.ndarray:
    """The object's pixels on the scene resized to `resolution` (nearest); its box centre when it is smaller."""
    index = scene.objects.index(obj) + 1
    labels = np.array(scene.label_mask().resize((resolution, resolution), Image.Resampling.NEAREST))
    mask = labels == index
    if not mask.any():
        x1, y1, x2, y2 = obj.box
        mask[int((y1 + y2) / 2 * resolution / scene.height), int((x1 + x2) / 2 * resolution / scene.width)] = True
    return mask


def candidates(scene: Scene, obj: Shape, resolution: int) -> Candidates:
    """The object's pixels and, there, the mean colour of the scene drawn with the object in every world
    colour and without it; pictures resized to `resolution` as training resizes them."""
    mask = object_pixels(scene, obj, resolution)
    others = [o for o in scene.objects if o is not obj]

    def mean_at(picture: Scene) -> np.ndarray:
        return resize_pixels(picture.render(), resolution)[mask].astype(np.float64).mean(axis=0)

    colours = {name: mean_at(scene.with_objects([*others, replace(obj, color=name)])) for name in COLORS}
    colours[NO_OBJECT] = mean_at(scene.with_objects(others))
    return Candidates(mask, colours)


def colour_at(drawing: np.ndarray, where: Candidates) -> str:
    """The candidate whose colour is nearest the drawing's mean colour at the object's pixels."""
    mean = drawing[where.mask].astype(np.float64).mean(axis=0)
    return min(where.colours, key=lambda name: float(np.linalg.norm(mean - where.colours[name])))


def moved_to_far_corner(scene: Scene) -> Scene:
    """The one-object scene with its object moved into the corner farthest from it (same size)."""
    if len(scene.objects) != 1:
        raise InputError(f"moving a box is defined here for one-object scenes, this one has {len(scene.objects)}")
    obj = scene.objects[0]
    x1, y1, x2, y2 = obj.box
    side_x, side_y = x2 - x1, y2 - y1
    nx = scene.width - side_x if (x1 + x2) / 2 < scene.width / 2 else 0
    ny = scene.height - side_y if (y1 + y2) / 2 < scene.height / 2 else 0
    return scene.with_objects([replace(obj, box=(nx, ny, nx + side_x, ny + side_y))])


def got_with_boxes_of(got: str, scene: Scene) -> str:
    """The GoT text with every phrase's boxes replaced by its objects' boxes in `scene` (text unchanged)."""
    parsed = parse_got(got)
    annotations = []
    for ref in parsed.refs:
        objects = scene.find(ref.phrase)
        if not objects:
            raise InputError(f"the GoT names {ref.phrase!r}, which is not in the scene")
        annotations.append(Annotation(ref.plain_span[0], ref.plain_span[1], tuple(scene.rel_box(o) for o in objects)))
    return render_got(parsed.plain, annotations)[0]


@dataclass(frozen=True)
class SceneScore:
    key: str
    colour: str
    at_box: str  # the nearest candidate at the object's pixels, drawn from the true GoT
    at_moved_box: str  # drawn from the moved GoT, at the new place
    at_old_box: str  # drawn from the moved GoT, at the old place

    @property
    def hit(self) -> bool:
        return self.at_box == self.colour

    @property
    def moved_hit(self) -> bool:
        return self.at_moved_box == self.colour

    @property
    def vacated(self) -> bool:
        return self.at_old_box == NO_OBJECT

    @property
    def object_in_box(self) -> bool:
        """Some object colour (right or wrong) at the object's pixels: where, not what."""
        return self.at_box != NO_OBJECT

    @property
    def object_moved(self) -> bool:
        return self.at_moved_box != NO_OBJECT and self.vacated


def summarize(scores: list[SceneScore]) -> dict[str, float | int]:
    """Rates over scenes: box hits (the true colour), hits in the moved box, old boxes left empty, both
    together; and where alone (an object of any colour in the box, and in the moved box with the old
    one empty): the box's part, apart from the text's part of naming the colour."""
    count = len(scores)
    if not count:
        raise InputError("no scene was scored")
    return {
        "scenes": count,
        "box_hit_rate": sum(s.hit for s in scores) / count,
        "moved_hit_rate": sum(s.moved_hit for s in scores) / count,
        "vacated_rate": sum(s.vacated for s in scores) / count,
        "moved_and_vacated_rate": sum(s.moved_hit and s.vacated for s in scores) / count,
        "object_in_box_rate": sum(s.object_in_box for s in scores) / count,
        "object_moved_rate": sum(s.object_moved for s in scores) / count,
        "chance_hit_rate": 1 / (len(COLORS) + 1),
    }


# ---- the experiment ----------------------------------------------------------------------------------

def world_shards(folder: Path, count: int, seed: int) -> tuple[Path, dict[str, dict]]:
    """A one-object T2I world set annotated by the oracle through the real pipeline (Ray must be up):
    (the shard folder, the truth by input_ref)."""
    from got_data.spec import load_spec
    from got_data.world.oracle import annotate_with_oracle
    from got_data.world.sets import read_truth, write_world_set

    path = write_world_set(folder / "set", "t2i", count, seed=seed, sizes=((SCENE_SIZE, SCENE_SIZE),), objects=1)
    truth = read_truth(folder / "set")
    stats, _ = annotate_with_oracle(load_spec("t2i-world.yaml"), "t2i", path, truth, folder / "shards",
                                    samples_per_shard=64)
    if not list((folder / "shards").glob("*.tar")):
        raise InputError(f"the oracle run on {path} wrote no shard: {json.dumps(stats)[:400]}")
    return folder / "shards", truth


def world_pictures(truth: dict[str, dict], resolution: int) -> torch.Tensor:
    """The truth's scenes rendered and resized like training pictures: [N, 3, R, R] in [-1, 1]."""
    from got_data.world.sets import scene_from_dict

    pixels = np.stack([resize_pixels(scene_from_dict(row["scene"]).render(), resolution) for row in truth.values()])
    return to_model_range(pixels)


def ssgm_config(settings: KnownAnswerSettings, shards: Path, vae: Path, run_dir: Path,
                spatial_guidance: bool) -> dict[str, Any]:
    """The tiny GoT model of `pipelines/train-tiny.yaml`, on the world shards, drawing through the fitted VAE."""
    return {
        "seed": settings.seed,
        "device": "cpu",
        "model": {
            "num_gen_tokens": 8,
            "spatial_guidance": spatial_guidance,
            "mllm": {
                "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 2,
                         "num_kv_heads": 1, "vision_depth": 2, "vision_hidden_size": 32},
                "lora": {"r": 8, "alpha": settings.lora_alpha, "dropout": 0.0},
                "image_min_pixels": 3136, "image_max_pixels": 3136, "max_got_tokens": 256, "max_new_tokens": 48,
            },
            "diffusion": {
                "tiny": {"unet_channels": [32, 64], "cross_attention_dim": 64, "pooled_dim": 32,
                         "time_embed_dim": 8, "vae_channels": [16, 32], "norm_groups": 8},
                "vae": str(vae),
            },
        },
        "data": {"sources": [{"name": "world", "shards": [str(shards / "*.tar")]}],
                 "resolution": settings.resolution, "shuffle_buffer": 64, "workers": 0},
        "train": {"steps": settings.ssgm_steps, "batch_size": settings.batch_size, "noise_offset": 0.0,
                  "ce_weight": settings.ce_weight,
                  "log_every": max(1, settings.ssgm_steps // 6)},
        "optimizer": {"lr": settings.lr},
        "schedule": {"kind": "cosine", "warmup_steps": max(1, settings.ssgm_steps // 30)},
        "checkpoint": {"dir": str(run_dir), "every": settings.ssgm_steps, "keep": 1},
    }


def score_checkpoint(checkpoint: Path, shards: Path, truth: dict[str, dict], settings: KnownAnswerSettings
                     ) -> list[SceneScore]:
    """Draw every held-out record from its true GoT and from its GoT with the box moved; score both."""
    from got_data.shards.reader import iter_samples
    from got_data.train.generate import GoTGenerator
    from got_data.world.sets import scene_from_dict

    generator = GoTGenerator.from_checkpoint(checkpoint)
    size = settings.resolution
    scores = []
    for sample in iter_samples(shards):
        record = sample.record
        if not isinstance(record, T2IRecord):
            raise InputError(f"sample {sample.key} is a {record.kind} record; the known-answer check draws T2I records")
        scene = scene_from_dict(truth[record.source.input_ref]["scene"])
        moved = moved_to_far_corner(scene)
        prompt = record.prompt
        drawn = np.array(generator.draw(prompt, record.got, None, size, size, settings.sample_steps, seed=settings.seed))
        moved_got = got_with_boxes_of(record.got, moved)
        drawn_moved = np.array(generator.draw(prompt, moved_got, None, size, size, settings.sample_steps,
                                              seed=settings.seed))
        obj, moved_obj = scene.objects[0], moved.objects[0]
        scores.append(SceneScore(
            key=sample.key, colour=obj.color,
            at_box=colour_at(drawn, candidates(scene, obj, size)),
            at_moved_box=colour_at(drawn_moved, candidates(moved, moved_obj, size)),
            at_old_box=colour_at(drawn_moved, candidates(scene, obj, size)),
        ))
    return scores


@dataclass(frozen=True)
class WorldData:
    """The experiment's shards and truth: training and held-out."""

    train_shards: Path
    train_truth: dict[str, dict]
    held_out_shards: Path
    held_out_truth: dict[str, dict]


def make_world_data(work: Path, settings: KnownAnswerSettings) -> WorldData:
    """Training and held-out one-object world shards, annotated by the oracle (Ray must be up)."""
    train_shards, train_truth = world_shards(work / "train", settings.train_scenes, settings.seed)
    held_shards, held_truth = world_shards(work / "held-out", settings.held_out_scenes,
                                           settings.seed + HELD_OUT_SEED_OFFSET)
    return WorldData(train_shards, train_truth, held_shards, held_truth)


def train_and_score(work: Path, data: WorldData, settings: KnownAnswerSettings = KnownAnswerSettings(),
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit the VAE, train the SSGM with and without spatial guidance, and score both on the held-out
    scenes (no Ray needed). Returns the report (also written to `work/report.json`)."""
    from got_data.train.config import TinyDiffusion, config_from_dict
    from got_data.train.tiny_vae import train_tiny_vae
    from got_data.train.trainer import Trainer

    tiny = ssgm_config(settings, data.train_shards, work / "vae", work / "run", True)["model"]["diffusion"]["tiny"]
    vae = train_tiny_vae(world_pictures(data.train_truth, settings.resolution), TinyDiffusion(**tiny), work / "vae",
                         steps=settings.vae_steps, seed=settings.seed)
    log(f"tiny VAE: reconstruction MSE {vae.reconstruction_mse:.4f}, scaling factor {vae.scaling_factor:.3f}")
    report: dict[str, Any] = {"settings": asdict(settings), "vae_reconstruction_mse": vae.reconstruction_mse}
    for name, guided in (("ssgm", True), ("no_ssgm", False)):
        run_dir = work / f"run-{name}"
        config = config_from_dict(ssgm_config(settings, data.train_shards, vae.path, run_dir, guided))
        history = Trainer(config, log=log).run()
        scores = score_checkpoint(run_dir / f"step-{settings.ssgm_steps:08d}", data.held_out_shards,
                                  data.held_out_truth, settings)
        report[name] = {**summarize(scores), "final_loss": history[-1]["loss"], "final_mse": history[-1]["mse"]}
        log(f"{name}: {report[name]}")
    (work / "report.json").write_text(json.dumps(report, indent=2))
    return report
