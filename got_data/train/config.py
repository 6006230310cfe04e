"""The training config (YAML), validated by pydantic so a typo fails before any model loads.

A model is either a local checkpoint folder (`path`, loaded with local_files_only) or a `tiny`
block of small dimensions built with random weights; exactly one of the two is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from got_data.errors import InputError, SpecError
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy, parse_caps
from got_data.uri import is_remote


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Strict):
    r: int = Field(default=32, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="projection names inside the language model's attention and MLP blocks",
    )


class TinyMLLM(_Strict):
    """Dimensions of a random-weight Qwen2.5-VL (tests, CPU benches)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int | None = Field(default=None, description="default: 2 x vision_hidden_size")
    vision_heads: int = 2
    vocab_size: int | None = Field(default=None, description="pad the embedding to this size (e.g. 151936 as in Qwen)")
    seed: int = 1234

    @model_validator(mode="after")
    def _heads(self) -> "TinyMLLM":
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 4:
            raise ValueError("hidden_size / num_heads must be a multiple of 4 (multimodal rope sections)")
        return self


class MLLMSettings(_Strict):
    path: Path | None = Field(default=None, description="local Qwen2.5-VL folder (model, tokenizer, preprocessor)")
    tiny: TinyMLLM | None = None
    lora: LoraSettings = Field(default_factory=LoraSettings)
    image_min_pixels: int = Field(default=256 * 28 * 28, gt=0, description="min pixels of the source image the MLLM sees")
    image_max_pixels: int = Field(default=512 * 28 * 28, gt=0)
    max_got_tokens: int = Field(default=1024, gt=0, description="GoT text is truncated to this many tokens")
    max_new_tokens: int = Field(default=1024, gt=0, description="budget when the MLLM writes a GoT at inference")
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> "MLLMSettings":
        if (self.path is None) == (self.tiny is None):
            raise ValueError("give exactly one of mllm.path (a local Qwen2.5-VL folder) or mllm.tiny")
        if self.image_min_pixels > self.image_max_pixels:
            raise ValueError("mllm.image_min_pixels exceeds image_max_pixels")
        return self


class TinyDiffusion(_Strict):
    """Dimensions of a random-weight SDXL-style UNet and VAE."""

    unet_channels: list[int] = Field(default_factory=lambda: [32, 64])
    cross_attention_dim: int = 64
    pooled_dim: int = 32
    time_embed_dim: int = 8
    vae_channels: list[int] = Field(default_factory=lambda: [16, 32])
    norm_groups: int = 8
    layers_per_block: int = 1
    transformer_layers: list[int] | None = Field(default=None, description="per block; default 1 each")
    attention_heads: list[int] | None = Field(default=None, description="per block; default channels / 16")
    seed: int = 1234


class DiffusionSettings(_Strict):
    path: Path | None = Field(default=None, description="local SDXL folder with unet/, vae/ and scheduler/")
    tiny: TinyDiffusion | None = None
    vae: Path | None = Field(
        default=None,
        description="a local AutoencoderKL folder used instead of the model's own VAE (e.g. a tiny VAE trained "
        "on the known-answer world's images: `got_data/train/tiny_vae.py`)",
    )
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> "DiffusionSettings":
        if (self.path is None) == (self.tiny is None):
            raise ValueError("give exactly one of diffusion.path (a local SDXL folder) or diffusion.tiny")
        return self


class ModelSettings(_Strict):
    mllm: MLLMSettings
    diffusion: DiffusionSettings
    num_gen_tokens: int = Field(default=64, gt=0, description="image-generation tokens appended after the GoT")
    spatial_guidance: bool = Field(
        default=True,
        description="false: train and draw without the box-mask (spatial) condition, the paper's 'no SSGM' ablation",
    )


class DataSource(_Strict):
    name: str = Field(min_length=1)
    shards: list[str] = Field(min_length=1, description="shard files, folders or globs, local or in a bucket (s3://bucket/got)")
    weight: float = Field(default=1.0, gt=0, description="relative share of this source in the mixed stream")


SpatialBoxes = Literal["edit_regions", "all_objects"]


class DataSettings(_Strict):
    sources: list[DataSource] = Field(min_length=1)
    resolution: int = Field(default=1024, gt=0, description="square training resolution of target, reference and masks")
    shuffle_buffer: int = Field(default=1000, ge=0)
    workers: int = Field(default=4, ge=0)
    skip_bad_samples: bool = Field(default=False, description="warn and skip samples that fail to decode")
    max_member_bytes: list[str] = Field(
        default_factory=list,
        description="caps on the shards' tar members by extension, EXT=SIZE as annotate's --max-member-bytes "
        "(jpg=20MB, '*=8M'); a link, sparse or over-cap member is never read",
    )
    reinstruction_probability: float = Field(
        default=0.0, ge=0, le=1,
        description="chance that an edit (each turn of a multi-turn record) trains on one of its concise rewrites "
        "instead of the instruction",
    )
    spatial_boxes: SpatialBoxes = Field(
        default="edit_regions",
        description="which boxes of an edit record paint the spatial canvases: its edit regions, or all_objects "
        "(every box of its GoT: the regions and, schema 1.1, the other objects it names); T2I records use every object",
    )

    @model_validator(mode="after")
    def _unique(self) -> "DataSettings":
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"data source names repeat: {names}")
        self.member_policy()  # a bad cap fails when the config loads
        return self

    def member_policy(self) -> MemberPolicy:
        """The tar member caps every shard read of the run applies (training, validation, evaluation)."""
        try:
            return DEFAULT_POLICY.with_caps(parse_caps(self.max_member_bytes))
        except InputError as exc:
            raise ValueError(f"max_member_bytes: {exc}") from None


class DropSettings(_Strict):
    """Per-sample probabilities of training a reduced conditioning (the CFG branches); full is the rest."""

    no_spatial: float = Field(default=0.05, ge=0, le=1, description="text + reference, spatial dropped")
    reference_only: float = Field(default=0.05, ge=0, le=1, description="text and spatial dropped")
    unconditional: float = Field(default=0.05, ge=0, le=1, description="everything dropped")

    @model_validator(mode="after")
    def _leave_full(self) -> "DropSettings":
        if self.no_spatial + self.reference_only + self.unconditional >= 1:
            raise ValueError("drop probabilities must sum below 1 (the full conditioning is never dropped entirely)")
        return self


class OptimizerSettings(_Strict):
    lr: float = Field(default=1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(default=1e-6, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)


class ScheduleSettings(_Strict):
    kind: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = Field(default=500, ge=0)


Parallelism = Literal["ddp", "fsdp"]


class TrainSettings(_Strict):
    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0, description="micro-batch of one worker (one process without --workers)")
    grad_accum: int | None = Field(default=None, gt=0, description="default: derived from global_batch, else 1")
    global_batch: int | None = Field(
        default=None, gt=0, description="samples per optimizer step over all workers (the paper: 128)"
    )
    ce_weight: float = Field(default=1.0, ge=0)
    mse_weight: float = Field(default=1.0, ge=0)
    noise_offset: float = Field(default=0.1, ge=0)
    drop: DropSettings = Field(default_factory=DropSettings)
    log_every: int = Field(default=10, gt=0)
    parallelism: Parallelism = Field(
        default="ddp",
        description="with --workers: ddp (every worker holds the whole model) or fsdp (FSDP2: weights, gradients and "
        "optimizer state sharded over the workers; checkpoints sharded, consolidated at the end); see docs/TRAINING.md",
    )


class ValidationSettings(_Strict):
    """A fixed held-out set whose loss is logged every `every` steps (validation.csv in the run folder)."""

    shards: list[str] = Field(min_length=1, description="shard files, folders or globs of held-out records")
    samples: int = Field(default=32, gt=0, description="the first N samples of the shards (in sorted shard order)")
    every: int = Field(default=100, gt=0)
    batch_size: int = Field(default=8, gt=0)


class EvaluationSettings(_Strict):
    """Drawings while training: every `every` steps rank 0 draws the first `samples` records of `shards`
    from their GoT (edits from their source) and writes them with the boxes, and the loss curves, to
    `eval.html` in the run folder."""

    shards: list[str] = Field(min_length=1, description="shard files, folders or globs of the records to draw")
    samples: int = Field(default=8, gt=0)
    every: int = Field(default=1000, gt=0)
    steps: int = Field(default=20, gt=0, description="denoising steps per drawing")
    seed: int = 0


class CheckpointSettings(_Strict):
    dir: Path = Field(description="run folder: checkpoints step-NNNNNNNN/, metrics.jsonl, tiny base models")
    every: int = Field(default=1000, gt=0)
    keep: int | None = Field(default=3, gt=0, description="keep the newest N checkpoints; null keeps all")
    resume: bool = Field(default=True, description="continue from the newest checkpoint in dir when there is one")


class TrainConfig(_Strict):
    seed: int = 0
    device: str = "cpu"
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    model: ModelSettings
    data: DataSettings
    train: TrainSettings
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    checkpoint: CheckpointSettings
    validation: ValidationSettings | None = None
    evaluation: EvaluationSettings | None = None
    init_from: Path | None = Field(
        default=None,
        description="a step-NNNNNNNN checkpoint whose weights start this run (fresh optimizer and schedule)",
    )

    @model_validator(mode="after")
    def _fsdp_draws_nothing(self) -> "TrainConfig":
        if self.train.parallelism == "fsdp" and self.evaluation is not None:
            raise ValueError(
                "evaluation drawings are not available under train.parallelism fsdp (rank 0 alone would need the "
                "whole model): drop the evaluation block, or draw from the consolidated checkpoints with got-data generate"
            )
        return self


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch splits: workers x batch_size x grad_accum samples per optimizer step."""

    workers: int
    batch_size: int
    grad_accum: int

    @property
    def global_batch(self) -> int:
        return self.workers * self.batch_size * self.grad_accum


def batch_plan(train: TrainSettings, workers: int) -> BatchPlan:
    """Derive grad_accum from the wanted global batch, or refuse a combination that does not divide."""
    per_step = workers * train.batch_size
    if train.global_batch is None:
        return BatchPlan(workers, train.batch_size, train.grad_accum or 1)
    if train.global_batch % per_step:
        raise SpecError(
            f"global batch {train.global_batch} does not divide into {workers} worker(s) x batch {train.batch_size}: "
            f"choose a batch_size or worker count whose product divides {train.global_batch}"
        )
    accum = train.global_batch // per_step
    if train.grad_accum is not None and train.grad_accum != accum:
        raise SpecError(
            f"global batch {train.global_batch} needs grad_accum {accum} with {workers} worker(s) x batch "
            f"{train.batch_size}, but the config sets grad_accum {train.grad_accum}: drop one of the two"
        )
    return BatchPlan(workers, train.batch_size, accum)


def load_config(path: Path | str) -> TrainConfig:
    """Read and validate a training config; relative paths in it resolve against the file's folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read training config {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"training config {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"training config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"training config {path} must be a mapping at the top level")
    return config_from_dict(data, base=path.parent.resolve())


def config_from_dict(data: dict, base: Path | None = None) -> TrainConfig:
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise SpecError(f"invalid training config: {reasons}") from exc
    return _resolve_paths(config, base) if base is not None else config


def _resolve_paths(config: TrainConfig, base: Path) -> TrainConfig:
    def resolve(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p).resolve()

    def resolve_glob(text: str) -> str:
        return text if Path(text).is_absolute() or is_remote(text) else str(base / text)

    model = config.model
    return config.model_copy(
        update={
            "model": model.model_copy(
                update={
                    "mllm": model.mllm.model_copy(update={"path": resolve(model.mllm.path)}),
                    "diffusion": model.diffusion.model_copy(
                        update={"path": resolve(model.diffusion.path), "vae": resolve(model.diffusion.vae)}
                    ),
                }
            ),
            "data": config.data.model_copy(
                update={
                    "sources": [
                        s.model_copy(update={"shards": [resolve_glob(g) for g in s.shards]}) for s in config.data.sources
                    ]
                }
            ),
            "checkpoint": config.checkpoint.model_copy(update={"dir": resolve(config.checkpoint.dir)}),
            "validation": None if config.validation is None else config.validation.model_copy(
                update={"shards": [resolve_glob(g) for g in config.validation.shards]}
            ),
            "evaluation": None if config.evaluation is None else config.evaluation.model_copy(
                update={"shards": [resolve_glob(g) for g in config.evaluation.shards]}
            ),
            "init_from": resolve(config.init_from),
        }
    )


def dump_config(config: TrainConfig, path: Path) -> None:
    """Write the (resolved) config beside a checkpoint, so generate and resume see what training used."""
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
