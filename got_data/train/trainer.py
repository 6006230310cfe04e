"""The training loop: stream shards, step the GoT model, log, checkpoint, resume exactly."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from got_data.train.checkpoint import (
    latest_checkpoint,
    load_training_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from got_data.train.components import ensure_tiny_base, load_components
from got_data.train.config import TrainConfig
from got_data.train.data import make_loader
from got_data.train.guidance import sample_branches
from got_data.train.model import GoTModel
from got_data.train.prompting import ChatEncoder

METRICS_FILE = "metrics.jsonl"
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, run_dir: Path) -> GoTModel:
    """Base parts (tiny ones built into the run folder first), LoRA and projectors, on the configured device."""
    if config.model.mllm.tiny is not None or config.model.diffusion.tiny is not None:
        ensure_tiny_base(config.model, config.data.resolution, run_dir / "base")
    seed_everything(config.seed)
    frozen_dtype = _AMP_DTYPES.get(config.mixed_precision, torch.float32)
    parts = load_components(config.model, run_dir, mllm_dtype=frozen_dtype, vae_dtype=frozen_dtype)
    model = GoTModel(parts, config.model.mllm.lora).to(config.device)
    if config.model.mllm.gradient_checkpointing:
        model.mllm.gradient_checkpointing_enable()
        model.mllm.enable_input_require_grads()
    if config.model.diffusion.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    return model


def make_encoder(config: TrainConfig, model: GoTModel) -> ChatEncoder:
    return ChatEncoder(model.tokenizer, model.image_processor, model.gen_token_ids, config.model.mllm.max_got_tokens)


def _lr_scheduler(config: TrainConfig, optimizer):
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    warmup = config.schedule.warmup_steps
    if config.schedule.kind == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, config.train.steps)
    return get_constant_schedule_with_warmup(optimizer, warmup)


class Trainer:
    """Fits the model of `config` for `config.train.steps` optimizer steps, resuming from the run folder."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.log = log
        self.run_dir = Path(config.checkpoint.dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def run(self) -> list[dict]:
        """Train; returns the metrics of the steps run in this call (also appended to metrics.jsonl)."""
        cfg = self.config
        model = build_model(cfg, self.run_dir)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.optimizer.lr, betas=cfg.optimizer.betas, eps=cfg.optimizer.eps, weight_decay=cfg.optimizer.weight_decay
        )
        lr_scheduler = _lr_scheduler(cfg, optimizer)
        step, batches_done = 0, 0
        resume_from = latest_checkpoint(self.run_dir) if cfg.checkpoint.resume else None
        if resume_from is not None:
            load_weights(model, resume_from)
            state = load_training_state(resume_from)
            optimizer.load_state_dict(state["optimizer"])
            lr_scheduler.load_state_dict(state["lr_scheduler"])
            set_rng_state(state["rng"])
            step, batches_done = state["step"], state["batches_done"]
            self.log(f"resumed from {resume_from} at step {step}")
        if step >= cfg.train.steps:
            self.log(f"nothing to do: {resume_from} is at step {step} of {cfg.train.steps}")
            return []
        encoder = make_encoder(cfg, model)
        loader = iter(make_loader(cfg.data, encoder, cfg.train.batch_size, cfg.seed, batches_done))
        amp = _AMP_DTYPES.get(cfg.mixed_precision)
        device_type = torch.device(cfg.device).type
        autocast = torch.autocast(device_type, dtype=amp) if amp is not None else nullcontext()
        drop = cfg.train.drop
        history: list[dict] = []
        window_start, window_samples = time.perf_counter(), 0
        model.train()
        model.vae.eval()
        with open(self.run_dir / METRICS_FILE, "a") as metrics_file:
            while step < cfg.train.steps:
                totals = {"loss": 0.0, "ce": 0.0, "mse": 0.0}
                for _ in range(cfg.train.grad_accum):
                    batch = next(loader)
                    batches_done += 1
                    branches = sample_branches(len(batch["keys"]), drop.no_spatial, drop.reference_only, drop.unconditional)
                    with autocast:
                        parts = model.training_loss(
                            batch, branches, cfg.train.noise_offset, cfg.train.ce_weight, cfg.train.mse_weight
                        )
                    (parts.total / cfg.train.grad_accum).backward()
                    totals["loss"] += parts.total.item() / cfg.train.grad_accum
                    totals["ce"] += parts.ce.item() / cfg.train.grad_accum
                    totals["mse"] += parts.mse.item() / cfg.train.grad_accum
                    window_samples += len(batch["keys"])
                if cfg.optimizer.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.optimizer.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                record = {"step": step, **totals, "lr": lr_scheduler.get_last_lr()[0]}
                history.append(record)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                    elapsed = time.perf_counter() - window_start
                    self.log(
                        f"step {step}/{cfg.train.steps} loss {totals['loss']:.4f} (ce {totals['ce']:.4f} "
                        f"mse {totals['mse']:.4f}) lr {record['lr']:.2e} {window_samples / elapsed:.1f} samples/s"
                    )
                    window_start, window_samples = time.perf_counter(), 0
                if step % cfg.checkpoint.every == 0 or step == cfg.train.steps:
                    path = save_checkpoint(model, optimizer, lr_scheduler, step, batches_done, cfg, self.run_dir)
                    prune_checkpoints(self.run_dir, cfg.checkpoint.keep)
                    self.log(f"saved {path}")
        return history
