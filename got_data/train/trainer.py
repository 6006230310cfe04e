"""The training loop: stream shards, step the GoT model, log, validate, checkpoint, resume exactly.

One loop serves a single process and every worker of a distributed run (`distributed.py`): with a
world of N it wraps the model in DistributedDataParallel (or shards it with FSDP2, `fsdp.py`), each
rank streams its own part of the data, and rank 0 alone writes metrics and checkpoints (under FSDP
every rank writes its shard of them, `sharded_checkpoint.py`). Randomness is drawn per step (dropout, seeded by step
and rank) and per sample (noise, timestep, dropped conditions: `randomness.py`), so resuming needs
only the step, the data position and the optimizer state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from got_data.errors import SpecError
from got_data.train.checkpoint import (
    CheckpointError,
    DataPosition,
    TrainingState,
    is_sharded,
    latest_checkpoint,
    load_training_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
)
from got_data.train.components import ensure_tiny_base, load_components
from got_data.train.config import BatchPlan, DropSettings, TrainConfig, batch_plan
from got_data.train.data import fixed_batches, held_out_samples, make_loader
from got_data.train.fsdp import set_gradient_sync, shard_model
from got_data.train.metrics import MetricsLog
from got_data.train.model import GoTModel, LossParts
from got_data.train.prompting import ChatEncoder
from got_data.train.randomness import derived_seed
from got_data.train.sharded_checkpoint import load_sharded_checkpoint, save_sharded_checkpoint

METRICS_FILE = "metrics.jsonl"
VALIDATION_FILE = "validation.csv"
VALIDATION_STEP = -1  # the fixed draw index of the held-out set's per-sample randomness
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, run_dir: Path, device: str | None = None) -> GoTModel:
    """Base parts (tiny ones built into the run folder first), LoRA and projectors, on the configured device."""
    if config.model.mllm.tiny is not None or config.model.diffusion.tiny is not None:
        ensure_tiny_base(config.model, config.data.resolution, run_dir / "base")
    seed_everything(config.seed)
    frozen_dtype = _AMP_DTYPES.get(config.mixed_precision, torch.float32)
    parts = load_components(config.model, run_dir, mllm_dtype=frozen_dtype, vae_dtype=frozen_dtype)
    model = GoTModel(parts, config.model.mllm.lora, config.model.spatial_guidance).to(device or config.device)
    if config.model.mllm.gradient_checkpointing:
        model.mllm.gradient_checkpointing_enable()
        model.mllm.enable_input_require_grads()
    if config.model.diffusion.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    return model


def make_encoder(config: TrainConfig, model: GoTModel) -> ChatEncoder:
    return ChatEncoder(model.tokenizer, model.image_processor, model.gen_token_ids, config.model.mllm.max_got_tokens)


def _lr_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    warmup = config.schedule.warmup_steps
    if config.schedule.kind == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, config.train.steps)
    return get_constant_schedule_with_warmup(optimizer, warmup)


@dataclass
class TrainState:
    """What a run starts from: the model, optimizer and schedule, and where in steps and data it is."""

    model: GoTModel
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int
    position: DataPosition
    resumed_from: Path | None


class Trainer:
    """Fits the model of `config` for `config.train.steps` optimizer steps, resuming from the run folder.

    `rank`/`world` place this process in a distributed run whose process group is already set up
    (Ray Train does that); the defaults are the single-process run."""

    def __init__(
        self, config: TrainConfig, log: Callable[[str], None] = print, rank: int = 0, world: int = 1,
        device: str | None = None,
    ) -> None:
        self.config = config
        self.plan: BatchPlan = batch_plan(config.train, world)
        self.rank = rank
        self.world = world
        self.device = device or config.device
        self.fsdp = config.train.parallelism == "fsdp"
        if self.fsdp and not torch.distributed.is_initialized():
            raise SpecError("train.parallelism fsdp shards the model over Ray Train workers: run with --workers N")
        self.log = log if rank == 0 else (lambda _: None)
        self.run_dir = Path(config.checkpoint.dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def layout(self, data_seed: int, batches_done: int) -> DataPosition:
        return DataPosition(
            world=self.world, loader_workers=self.config.data.workers, batch_size=self.plan.batch_size,
            seed=data_seed, batches_done=batches_done,
        )

    def setup(self) -> TrainState:
        """Build the model and optimizer; resume from the newest checkpoint, or start from `init_from`."""
        cfg = self.config
        # FSDP: built on the CPU, each unit's shard moved to the device by fully_shard
        model = build_model(cfg, self.run_dir, "cpu" if self.fsdp else self.device)
        resume_from = latest_checkpoint(self.run_dir) if cfg.checkpoint.resume else None
        if resume_from is None and cfg.init_from is not None:
            load_weights(model, cfg.init_from)
            self.log(f"weights from {cfg.init_from}; fresh optimizer and schedule")
        if self.fsdp:
            shard_model(model, self.world, torch.device(self.device).type)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.optimizer.lr, betas=cfg.optimizer.betas, eps=cfg.optimizer.eps, weight_decay=cfg.optimizer.weight_decay
        )
        lr_scheduler = _lr_scheduler(cfg, optimizer)
        fresh = self.layout(cfg.seed, 0)
        if resume_from is None:
            return TrainState(model, optimizer, lr_scheduler, 0, fresh, None)
        if self.fsdp:
            state = load_sharded_checkpoint(model, optimizer, lr_scheduler, resume_from)
        else:
            state = self._load_full(model, optimizer, lr_scheduler, resume_from)
        position = state.position
        if not position.same_layout(fresh):
            # Another worker count, loader worker count or micro-batch: the streams are cut differently,
            # so the data restarts on a stream seeded by the step (not the samples an unchanged run would see).
            self.log(
                f"data layout changed since {resume_from.name} ({position.describe()} -> {fresh.describe()}): "
                "the data stream restarts reshuffled; the run continues, not bit-exact"
            )
            position = self.layout(derived_seed("relayout", cfg.seed, state.step), 0)
        self.log(f"resumed from {resume_from} at step {state.step}")
        return TrainState(model, optimizer, lr_scheduler, state.step, position, resume_from)

    @staticmethod
    def _load_full(model: GoTModel, optimizer: torch.optim.Optimizer, lr_scheduler, checkpoint: Path) -> TrainingState:
        if is_sharded(checkpoint):
            raise CheckpointError(
                f"{checkpoint} was written by an fsdp run (its optimizer state is sharded): resume it with "
                "train.parallelism fsdp, or start a new run folder with init_from: it (weights, a fresh optimizer)"
            )
        load_weights(model, checkpoint)
        state = load_training_state(checkpoint)
        optimizer.load_state_dict(state.optimizer)
        lr_scheduler.load_state_dict(state.lr_scheduler)
        return state

    def run(self) -> list[dict]:
        """Train; returns the metrics of the steps run in this call (rank 0 also appends them to metrics.jsonl)."""
        cfg = self.config
        state = self.setup()
        model, optimizer, lr_scheduler = state.model, state.optimizer, state.lr_scheduler
        step, position = state.step, state.position
        metrics = MetricsLog(self.run_dir / METRICS_FILE, self.run_dir / VALIDATION_FILE, enabled=self.rank == 0)
        metrics.truncate_after(step)
        if step >= cfg.train.steps:
            self.log(f"nothing to do: {state.resumed_from} is at step {step} of {cfg.train.steps}")
            return []
        encoder = make_encoder(cfg, model)
        loader = iter(make_loader(cfg.data, encoder, self.plan.batch_size, position.seed, position.batches_done,
                                  rank=self.rank, world=self.world))
        held_out = self._held_out(encoder) if self.rank == 0 or self.fsdp else None  # FSDP: every rank takes part
        drawings = self._eval_items() if self.rank == 0 else None
        stepper = Stepper(model, self.world, self.device, cfg, sharded=self.fsdp)
        params = [p for p in model.parameters() if p.requires_grad]
        history: list[dict] = []
        window_start, window_samples = time.perf_counter(), 0
        batches_done = position.batches_done
        while step < cfg.train.steps:
            torch.manual_seed(derived_seed("step", cfg.seed, step, self.rank))  # dropout masks
            batches = [next(loader) for _ in range(self.plan.grad_accum)]
            batches_done += len(batches)
            totals = stepper.accumulate(batches, step)
            if cfg.optimizer.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.optimizer.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            record = {"step": step, **totals, "lr": lr_scheduler.get_last_lr()[0], "time": round(time.time(), 3)}
            history.append(record)
            metrics.train(record)
            window_samples += self.plan.global_batch
            if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                elapsed = time.perf_counter() - window_start
                self.log(
                    f"step {step}/{cfg.train.steps} loss {totals['loss']:.4f} (ce {totals['ce']:.4f} "
                    f"mse {totals['mse']:.4f}) lr {record['lr']:.2e} {window_samples / elapsed:.1f} samples/s"
                )
                window_start, window_samples = time.perf_counter(), 0
            if held_out is not None and cfg.validation is not None and (step % cfg.validation.every == 0 or step == cfg.train.steps):
                parts = validation_loss(model, held_out, cfg)
                metrics.validation(step, parts)
                self.log(f"step {step} validation loss {parts['loss']:.4f}")
            if drawings is not None and cfg.evaluation is not None and (step % cfg.evaluation.every == 0 or step == cfg.train.steps):
                self._draw(model, encoder, drawings, step)
            if step % cfg.checkpoint.every == 0 or step == cfg.train.steps:
                self._save(state, step, self.layout(position.seed, batches_done))
        return history

    def _save(self, state: TrainState, step: int, position: DataPosition) -> None:
        """Rank 0 writes the checkpoint; under FSDP every rank writes its shard."""
        args = (state.model, state.optimizer, state.lr_scheduler, step, position, self.config, self.run_dir)
        if self.fsdp:
            path = save_sharded_checkpoint(*args, rank=self.rank)
        elif self.rank == 0:
            path = save_checkpoint(*args)
        else:
            return
        if self.rank == 0:
            prune_checkpoints(self.run_dir, self.config.checkpoint.keep)
            self.log(f"saved {path}")

    def _eval_items(self):
        if self.config.evaluation is None:
            return None
        from got_data.train.evaluation import eval_items

        return eval_items(held_out_samples(self.config.evaluation.shards, self.config.evaluation.samples, "evaluation",
                                           self.config.data.member_policy()))

    def _draw(self, model: GoTModel, encoder: ChatEncoder, items, step: int) -> None:
        from got_data.train.evaluation import draw_evaluation
        from got_data.train.generate import GoTGenerator

        evaluation = self.config.evaluation
        assert evaluation is not None  # drawings are made only for a run with evaluation settings
        generator = GoTGenerator(model, encoder, self.device, default_size=self.config.data.resolution)
        size = self.config.data.resolution
        draw_evaluation(generator, items, evaluation, size, step, self.run_dir)
        model.train()
        model.vae.eval()
        self.log(f"step {step} drawings in {self.run_dir / 'eval.html'}")

    def _held_out(self, encoder: ChatEncoder) -> list[dict] | None:
        validation = self.config.validation
        if validation is None:
            return None
        return fixed_batches(
            validation.shards, validation.samples, encoder, self.config.data.resolution, validation.batch_size,
            encoder.tokenizer.pad_token_id, self.config.data.member_policy(),
        )


class Stepper:
    """Forward and backward of one optimizer step's micro-batches; under DDP or FSDP, gradients are
    averaged over ranks once, at the last micro-batch."""

    def __init__(self, model: GoTModel, world: int, device: str, config: TrainConfig, sharded: bool = False) -> None:
        self.config = config
        self.world = world
        self.sharded = sharded  # the model is already an FSDP module (fsdp.shard_model)
        if world > 1 and not sharded:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(device)] if torch.device(device).type == "cuda" else None
            self.module: Any = DistributedDataParallel(model, device_ids=ids)  # no_sync() lives on DDP only
        else:
            self.module = model
        amp = _AMP_DTYPES.get(config.mixed_precision)
        device_type = torch.device(device).type
        self.autocast = (lambda: torch.autocast(device_type, dtype=amp)) if amp is not None else nullcontext
        model.train()
        model.vae.eval()

    def accumulate(self, batches: list[dict], step: int) -> dict[str, float]:
        """Backward over `batches` (gradients left in .grad, averaged over ranks); the mean losses of the
        global batch."""
        totals = torch.zeros(3)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            if self.sharded:
                set_gradient_sync(self.module, last)
            with nullcontext() if self.world == 1 or self.sharded or last else self.module.no_sync():
                with self.autocast():
                    parts: LossParts = self.module(batch, self.config.train, self.config.seed, step)
                (parts.total / len(batches)).backward()
            totals += torch.stack([parts.total.detach(), parts.ce, parts.mse]).float().cpu() / len(batches)
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(totals)
            totals /= self.world
        loss, ce, mse = totals.tolist()
        return {"loss": loss, "ce": ce, "mse": mse}


@torch.no_grad()
def validation_loss(model: GoTModel, batches: list[dict], config: TrainConfig) -> dict[str, float]:
    """Mean losses of a fixed held-out set: full conditioning, fixed per-sample noise, no dropout. Called
    through forward, so an FSDP model gathers its weights (every rank takes part)."""
    model.eval()
    full = config.train.model_copy(update={"drop": DropSettings(no_spatial=0, reference_only=0, unconditional=0)})
    count = sum(len(b["keys"]) for b in batches)
    totals = {"loss": 0.0, "ce": 0.0, "mse": 0.0}
    for batch in batches:
        parts = model(batch, full, config.seed, VALIDATION_STEP)
        weight = len(batch["keys"]) / count
        totals["loss"] += parts.total.item() * weight
        totals["ce"] += parts.ce.item() * weight
        totals["mse"] += parts.mse.item() * weight
    model.train()
    model.vae.eval()
    return totals
