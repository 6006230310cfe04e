"""Train the world's tiny models: a Qwen2-VL for the `vlm` stages and a Qwen2 for the `llm` stages.

The training data is what the real pipelines ask, answered by the oracle: world sets are annotated
with `annotate_with_oracle`, which records every request (messages as the stages render them, the
images as the pools would receive them) with its perfect answer. So the models learn the exact
prompts, answer formats and grammars the pipelines use, with nothing written twice.

The VLM is trained in three phases (docs/PERFORMANCE.md says what each fixed):
1. vision: the tower learns what every image token shows (`vision_phase`), then stays frozen;
2. grounding: the ground stage's requests on 1-4-object scenes, with one head per supervised layer
   taught to look at the image tokens under the answer's box. Without that signal the model boxed
   *an* object and picked which at chance; with it, it picks the named one;
3. mixed: every stage on the full sets, the same attention signal on ground and localize answers,
   and on describing answers (recaption, describe) while they write about each object.

Prompts are tokenized by the same `PromptBuilder` the engine actors use; each `<|image_pad|>` is
expanded to the image's merged patch count as vLLM does. The loss is on answer tokens only. Batches
hold one stage each (similar lengths), stages drawn in turn so short answers are not drowned out.
Everything is seeded: the same config gives the same checkpoint on the same machine.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from got_data.families import QWEN2, QWEN2_VL
from got_data.records.boxes import Box
from got_data.world.oracle import Example
from got_data.world.sets import WORLD_SPECS
from got_data.world.vision_phase import TOKEN_PIXELS, VisionPhase

if TYPE_CHECKING:
    from got_data.spec import PipelineSpec


@dataclass
class RoleTraining:
    """Sizes and schedule of one model."""

    hidden_size: int
    layers: int
    intermediate_size: int
    steps: int
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 100
    vision_embed_dim: int = 0  # vlm only
    vision_depth: int = 0
    # vlm only. Qwen2-VL's own base: its slow frequencies barely turn over a prompt, so a phrase can
    # match image tokens by content wherever they sit. (A base of 20 made every frequency turn fast:
    # position was easier to read from rotations, but words could not find the object they name.)
    # Where things are comes from the pixels' ramp through the vision tower instead.
    rope_theta: float = 1_000_000.0
    mrope_section: tuple[int, int, int] = (8, 12, 12)
    stage_weights: dict[str, float] = field(default_factory=dict)  # default 1.0 per stage
    # vlm only: steps and batch of the grounding phase (0: no such phase)
    grounding_steps: int = 0
    grounding_batch_size: int = 32
    # vlm only: weight of the attention signal (grounding and describing answers, see `attention_loss`),
    # and the layers whose first head gets it (layer 0 cannot: it has not yet read the phrase)
    attention_weight: float = 0.0
    attention_layers: tuple[int, ...] = ()


@dataclass
class WorldTrainingConfig:
    seed: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"t2i": 1500, "edit": 600, "multiturn": 300})
    grounding_scenes: int = 8000  # a T2I set of 1-4-object scenes for the vlm's grounding phase
    # T2I scenes with repeated objects ("two red circles"): every stage in the mixed phase, and their
    # grounding requests in the grounding phase, so the vlm learns to box every instance
    repeat_scenes: int = 500
    grounding_repeat_scenes: int = 2500
    # sets annotated with decoy boxes (`WorldOracle.decoys`), of which only the verify requests are kept:
    # on the oracle's own boxes every verify answer is "yes", and a model taught only that vouches for all
    verify_counts: dict[str, int] = field(default_factory=lambda: {"t2i": 700, "edit": 500})
    # multiturn sequences given as one combined instruction: the split and every per-turn stage after it
    combined_count: int = 300
    # The edit and multiturn sets above assemble in context (`assemble_edit` `mode: in_context`, whatever
    # the world specs choose); these sets assemble with `mode: fields`, and only their assembly requests
    # are kept: the world LLM answers both modes
    fields_counts: dict[str, int] = field(default_factory=lambda: {"edit": 300, "multiturn": 150})
    vocab_size: int = 2048
    vision: VisionPhase = field(default_factory=VisionPhase)
    vlm: RoleTraining = field(default_factory=lambda: RoleTraining(
        hidden_size=128, layers=4, intermediate_size=384, steps=3600, vision_embed_dim=128, vision_depth=2,
        stage_weights={"ground": 3.0, "localize": 2.0, "recaption": 2.0, "describe": 1.5}, grounding_steps=2000,
        attention_weight=1.0,
        attention_layers=(1, 2, 3)))
    # 3000 steps: at 1500 the LLM copied the wrong object from the prompt in most extraction answers
    llm: RoleTraining = field(default_factory=lambda: RoleTraining(
        hidden_size=128, layers=3, intermediate_size=384, steps=3000))


GROUNDING_PHASE = "vlm grounding phase"  # key of the grounding scenes' examples
# answers that box the phrase's instances on the one image asked about
ATTENDED_STAGES = ("ground", "localize", "place_objects")
VERIFY_STAGES = ("verify", "verify_regions")
# (describing answers get their attention targets from the oracle's `Example.mentions`)


def collect_examples(config: WorldTrainingConfig, work_dir: Path) -> dict[str, list[Example]]:
    """Oracle-annotated world sets -> recorded examples by role ("vlm", "llm"), and under
    `GROUNDING_PHASE` the grounding examples of the grounding scenes. Ray must be up."""
    from got_data.spec import load_spec

    by_role: dict[str, list[Example]] = defaultdict(list)
    specs = {kind: with_assembly(load_spec(WORLD_SPECS[kind]), "in_context") for kind in WORLD_SPECS}

    def keep(examples: list[Example], kind: str, only: tuple[str, ...] | None = None) -> None:
        """The examples of the stages `only` names, or of every stage but verify's: those come from the
        decoy runs alone, where its answers are "yes" and "no" in about equal numbers."""
        roles = {stage.name: stage.role for stage in specs[kind].stages if stage.role is not None}
        for example in examples:
            if example.stage in only if only is not None else example.stage not in VERIFY_STAGES:
                by_role[roles[example.stage]].append(example)

    for kind, count in config.counts.items():
        if count > 0:
            keep(_oracle_examples(specs[kind], kind, count, config.seed, work_dir / kind), kind)
    if config.repeat_scenes > 0:
        keep(_oracle_examples(specs["t2i"], "t2i", config.repeat_scenes, config.seed + 2, work_dir / "repeats",
                              repeats=True), "t2i")
    if config.combined_count > 0:
        keep(_oracle_examples(specs["multiturn"], "multiturn", config.combined_count, config.seed + 5,
                              work_dir / "combined", combined=True), "multiturn")
    for kind, count in config.verify_counts.items():
        if count > 0:  # the whole pipeline runs on decoy boxes; only the verify questions are kept
            keep(_oracle_examples(specs[kind], kind, count, config.seed + 3, work_dir / f"verify-{kind}", decoys=config.seed),
                 kind, only=VERIFY_STAGES)
    for kind, count in config.fields_counts.items():
        if count > 0:
            keep(_oracle_examples(with_assembly(specs[kind], "fields"), kind, count, config.seed + 6,
                                  work_dir / f"fields-{kind}"), kind, only=("assemble_edit",))
    # The whole T2I pipeline runs so the grounding requests are exactly the stage's; only those are kept.
    for count, seed, repeats in ((config.grounding_scenes, config.seed + 1, False),
                                 (config.grounding_repeat_scenes, config.seed + 4, True)):
        if count > 0:
            folder = work_dir / ("grounding-repeats" if repeats else "grounding")
            by_role[GROUNDING_PHASE] += [e for e in _oracle_examples(specs["t2i"], "t2i", count, seed, folder,
                                                                     repeats=repeats)
                                         if e.stage == "ground"]
    return dict(by_role)


def with_assembly(spec: PipelineSpec, mode: str) -> PipelineSpec:
    """A copy of `spec` whose edit assembly runs in `mode` (`fields` or `in_context`)."""
    spec = spec.model_copy(deep=True)
    for stage in spec.stages:
        if stage.name == "assemble_edit":
            stage.options["mode"] = mode
    return spec


def _oracle_examples(spec: PipelineSpec, kind: str, count: int, seed: int, folder: Path, repeats: bool = False,
                     combined: bool = False, decoys: int | None = None) -> list[Example]:
    from got_data.world.oracle import annotate_with_oracle
    from got_data.world.sets import read_truth, write_world_set

    path = write_world_set(folder / "set", kind, count, seed=seed, repeats=repeats, combined=combined)
    _, examples = annotate_with_oracle(spec, kind, path, read_truth(folder / "set"), folder / "out",
                                       family=QWEN2_VL, record=True, decoys=decoys)
    return examples


def tokenizer_corpus(examples: list[Example], prompts_dir: Path) -> list[str]:
    """Text the tokenizer is fitted on: the prompt templates, the requests' text and the answers."""
    lines = [p.read_text() for p in sorted(prompts_dir.glob("*.txt"))]
    seen: set[str] = set()
    for example in examples:
        for message in example.messages:
            for part in message["content"]:
                text = part.get("text") if isinstance(part, dict) else None
                if text and text not in seen:
                    seen.add(text)
                    lines.append(text)
        lines.append(example.answer)
    return lines


@dataclass
class Encoded:
    stage: str
    input_ids: list[int]
    labels: list[int]
    images: list[Any]  # PIL images, processed per batch (keeps memory flat)
    # (answer positions, image-token positions): where the first head of each supervised layer should
    # look while predicting those answer tokens
    attend: list[tuple[list[int], list[int]]] = field(default_factory=list)


class ExampleEncoder:
    """Examples -> token ids with the image placeholders expanded, labels on the answer only."""

    def __init__(self, tokenizer: Any, family: str, min_pixels: int | None = None, max_pixels: int | None = None):
        from got_data.engines.prompting import PromptBuilder

        self.tokenizer = tokenizer
        self.builder = PromptBuilder(tokenizer, family)
        self.image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.processor: Any = None  # a Qwen2VLImageProcessor for a vision family
        self.bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        if self.builder.family.vision:
            from transformers import Qwen2VLImageProcessor

            self.processor = Qwen2VLImageProcessor(**self.bounds)

    def token_grid(self, image: Any) -> tuple[int, int]:
        """(rows, columns) of merged tokens the model sees for `image`."""
        from got_data.records.boxes import smart_resize

        h, w = smart_resize(image.height, image.width, **self.bounds)
        return h // TOKEN_PIXELS, w // TOKEN_PIXELS

    def image_tokens(self, image: Any) -> int:
        rows, cols = self.token_grid(image)
        return rows * cols

    def prompt_ids(self, example: Example) -> list[int]:
        """The request's token ids as the model sees them: each image placeholder expanded."""
        prompt = self.builder.build(example.messages, len(example.images)).token_ids
        expanded: list[int] = []
        images = iter(example.images)
        for token in prompt:
            if token == self.image_pad:
                expanded.extend([self.image_pad] * self.image_tokens(next(images)))
            else:
                expanded.append(token)
        return expanded

    def encode(self, example: Example) -> Encoded:
        expanded = self.prompt_ids(example)
        tokens = self.tokenizer(example.answer, add_special_tokens=False, return_offsets_mapping=True)
        answer = list(tokens["input_ids"]) + [self.end]
        attend = []
        if example.stage in ATTENDED_STAGES or (example.mentions and example.images):
            grid = self.token_grid(example.images[0])
            pads = [i for i, token in enumerate(expanded) if token == self.image_pad]
        if example.stage in ATTENDED_STAGES:
            from got_data.annotate.grounding import GroundingParseError, parse_qwen2_vl

            try:
                boxes = parse_qwen2_vl(example.answer)
            except GroundingParseError:  # "not there": nothing to look at
                boxes = []
            looked_at = sorted({token for box in boxes for token in box_tokens(box, grid, pads)})
            if looked_at:
                attend = [(list(range(len(expanded) - 1, len(expanded) + len(answer) - 1)), looked_at)]
        elif example.mentions and example.images:
            for start, end, box in mention_spans(example.answer, example.mentions):
                # the position before a token predicts it
                predicting = [len(expanded) + i - 1 for i, (a, b) in enumerate(tokens["offset_mapping"]) if a < end and b > start]
                attend.append((predicting, box_tokens(box, grid, pads)))
        return Encoded(stage=example.stage, input_ids=expanded + answer, labels=[-100] * len(expanded) + answer,
                       images=example.images, attend=attend)

    def batch(self, items: list[Encoded]) -> dict[str, Any]:
        import torch

        length = max(len(e.input_ids) for e in items)
        pad = self.tokenizer.pad_token_id
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([e.input_ids + [pad] * (length - len(e.input_ids)) for e in items]),
            "labels": torch.tensor([e.labels + [-100] * (length - len(e.labels)) for e in items]),
            "attention_mask": torch.tensor([[1] * len(e.input_ids) + [0] * (length - len(e.input_ids)) for e in items]),
        }
        images = [image for e in items for image in e.images]
        if images:  # M-RoPE needs to know which tokens are image tokens
            batch["mm_token_type_ids"] = (batch["input_ids"] == self.image_pad).long()
            processed = self.processor(images=images, return_tensors="pt")
            batch["pixel_values"] = processed["pixel_values"]
            batch["image_grid_thw"] = processed["image_grid_thw"]
        return batch


def box_tokens(box: Box, grid: tuple[int, int], pads: list[int]) -> list[int]:
    """Of an image's token positions `pads` (rows of `grid` tokens), those under `box`: the tokens
    it covers by a quarter, else the one under its centre."""
    rows, cols = grid
    covered = []
    for r in range(rows):
        for c in range(cols):
            across = min(box.x2, (c + 1) * 1000 / cols) - max(box.x1, c * 1000 / cols)
            down = min(box.y2, (r + 1) * 1000 / rows) - max(box.y1, r * 1000 / rows)
            if across > 0 and down > 0 and across * down >= 0.25 * (1000 / cols) * (1000 / rows):
                covered.append(r * cols + c)
    if not covered:
        centre_col = min(cols - 1, int((box.x1 + box.x2) / 2 * cols / 1000))
        covered = [min(rows - 1, int((box.y1 + box.y2) / 2 * rows / 1000)) * cols + centre_col]
    return [pads[i] for i in covered]


_MENTION_ENDS = (",", ".", " and ", " on a ", '"')


def mention_spans(answer: str, mentions: list[tuple[str, Box]]) -> list[tuple[int, int, Box]]:
    """(start, end, box) of every place `answer` names a mentioned object: from its article to the
    end of what is said of it ("A red circle is at the top left", "a blue square")."""
    spans = []
    lowered = answer.lower()
    for phrase, box in mentions:
        at = lowered.find(phrase)
        while at >= 0:
            start = next((at - len(a) for a in ("an ", "a ") if lowered[max(0, at - len(a)):at] == a), at)
            ends = [i for i in (lowered.find(mark, at + len(phrase)) for mark in _MENTION_ENDS) if i >= 0]
            spans.append((start, min(ends) if ends else len(answer), box))
            at = lowered.find(phrase, at + len(phrase))
    return spans


def attention_loss(attentions: tuple[Any, ...], layers: tuple[int, ...], items: list[Encoded]) -> Any:
    """Mean over `layers` of -log(the first head's attention on the image tokens each item's `attend`
    names), at the answer positions it names."""
    import torch

    length = attentions[layers[0]].shape[-1]
    target = torch.zeros(len(items), length, length, dtype=torch.bool)
    for row, item in enumerate(items):
        for queries, keys in item.attend:
            target[row, torch.tensor(queries)[:, None], torch.tensor(keys)[None, :]] = True
    asked = target.any(-1)  # [batch, query positions]
    loss: torch.Tensor | float = 0.0
    for layer in layers:
        on_target = (attentions[layer][:, 0] * target).sum(-1)
        loss = loss - torch.log(on_target[asked] + 1e-6).mean()
    return loss / len(layers)


def train_role(model: Any, encoder: ExampleEncoder, examples: list[Encoded], plan: RoleTraining, seed: int,
               progress: Callable[[int, int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Train in place; returns the final mean loss per stage (over the last 10% of steps)."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    by_stage: dict[str, list[Encoded]] = defaultdict(list)
    for example in examples:
        by_stage[example.stage].append(example)
    stages = sorted(by_stage)
    weights = [plan.stage_weights.get(s, 1.0) for s in stages]
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < plan.warmup_steps:
            return (step + 1) / plan.warmup_steps
        done = (step - plan.warmup_steps) / max(1, plan.steps - plan.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    recent: dict[str, list[float]] = defaultdict(list)
    tail_from = int(plan.steps * 0.9)
    tail: dict[str, list[float]] = defaultdict(list)
    for step in range(plan.steps):
        stage = rng.choices(stages, weights=weights)[0]
        pool = by_stage[stage]
        items = [pool[rng.randrange(len(pool))] for _ in range(plan.batch_size)]
        batch = encoder.batch(items)
        attended = plan.attention_weight > 0 and any(item.attend for item in items)
        out = model(**batch, output_attentions=attended)
        loss = out.loss
        if attended:
            loss = loss + plan.attention_weight * attention_loss(out.attentions, plan.attention_layers, items)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        recent[stage].append(out.loss.item())
        if step >= tail_from:
            tail[stage].append(out.loss.item())
        if progress is not None and (step + 1) % 50 == 0:
            progress(step + 1, plan.steps, {s: sum(v[-10:]) / len(v[-10:]) for s, v in recent.items() if v})
    model.eval()
    return {s: sum(v) / len(v) for s, v in tail.items()}


def train_world_models(out: str | Path, config: WorldTrainingConfig | None = None, work_dir: str | Path | None = None,
                       roles: tuple[str, ...] = ("vlm", "llm"),
                       progress: Callable[[str, int, int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Collect oracle examples, fit the tokenizer, train each role's model, save to `out/vlm`, `out/llm`.
    Returns a report (sizes, steps, seconds, final losses) also written to `out/training.json`."""
    import tempfile

    import ray

    from got_data.engines.tiny_models import build_tokenizer, llm_model, save_llm, save_vlm, text_dims, vision_dims, vlm_model
    from got_data.local_ray import start_local_ray
    from got_data.resources import resource_dir
    from got_data.spec import load_spec
    from got_data.world.vision_phase import train_vision_tower

    config = config or WorldTrainingConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    own_ray = not ray.is_initialized()
    if own_ray:
        start_local_ray(2, 400 * 1024**2)
    try:
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            examples = collect_examples(config, Path(tmp))
    finally:
        if own_ray:
            ray.shutdown()
    everything = [e for role in ("vlm", "llm") for e in examples.get(role, [])]
    tokenizer = build_tokenizer(config.vocab_size, corpus=tokenizer_corpus(everything, resource_dir("prompts")),
                                split_digits=True)
    vlm_bounds = load_spec(WORLD_SPECS["t2i"]).models["vlm"]
    report: dict[str, Any] = {"config": asdict(config), "examples": {r: len(v) for r, v in examples.items()},
                              "collect_seconds": time.monotonic() - started}
    for role in roles:
        plan = getattr(config, role)
        role_started = time.monotonic()
        text = text_dims(plan.hidden_size, plan.layers, plan.intermediate_size)
        if role == "vlm":
            model = vlm_model(tokenizer, text, vision_dims(plan.vision_embed_dim, plan.vision_depth), config.seed,
                              rope_theta=plan.rope_theta, mrope_section=plan.mrope_section)
            encoder = ExampleEncoder(tokenizer, QWEN2_VL, vlm_bounds.min_pixels, vlm_bounds.max_pixels)
            if config.vision.steps:
                report["vision_phase"] = train_vision_tower(
                    model, config.vision, encoder.bounds, config.seed,
                    progress=partial(progress, "vlm vision") if progress else None)
            if plan.attention_weight:
                model.set_attn_implementation("eager")  # the attention signal needs the weights
        else:
            model = llm_model(tokenizer, text, config.seed)
            encoder = ExampleEncoder(tokenizer, QWEN2)
        if role == "vlm" and plan.grounding_steps and examples.get(GROUNDING_PHASE):
            first = replace(plan, steps=plan.grounding_steps, batch_size=plan.grounding_batch_size, stage_weights={})
            report["grounding_phase"] = train_role(
                model, encoder, [encoder.encode(e) for e in examples[GROUNDING_PHASE]], first, config.seed,
                progress=partial(progress, "vlm grounding") if progress else None)
        encoded = [encoder.encode(e) for e in examples[role]]
        losses = train_role(model, encoder, encoded, plan, config.seed,
                            progress=partial(progress, role) if progress else None)
        folder = out / role
        if role == "vlm":
            model.set_attn_implementation("sdpa")
            save_vlm(model, tokenizer, folder, vlm_bounds.min_pixels, vlm_bounds.max_pixels)
        else:
            save_llm(model, tokenizer, folder)
        report[role] = {"parameters": sum(p.numel() for p in model.parameters()), "steps": plan.steps,
                        "seconds": time.monotonic() - role_started, "final_loss": losses}
    report["seconds"] = time.monotonic() - started
    report_path = out / "training.json"
    if report_path.exists():  # retraining some roles keeps what the report says of the others
        earlier = json.loads(report_path.read_text())
        report.update({role: earlier[role] for role in ("vlm", "llm") if role not in roles and role in earlier})
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report
