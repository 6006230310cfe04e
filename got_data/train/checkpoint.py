"""Checkpoints that resume exactly: weights, optimizer, LR schedule, RNG states and data position.

Layout of `<run>/step-NNNNNNNN/`:
    mllm_lora/               peft adapter (LoRA + the trained image-generation token embeddings)
    projectors.safetensors   text and pooled projectors
    unet/                    the 12-channel UNet (diffusers format)
    trainer_state.pt         step, data position, optimizer and scheduler state (tensors, numbers,
                             strings only: it loads with torch.load(weights_only=True), so a file
                             dropped into a run folder cannot run code on resume)
    config.yaml              the resolved training config
A checkpoint is written under a hidden temporary name and renamed into place, so a folder named like
a checkpoint is always complete. No RNG state is kept: the trainer draws its randomness from the step
and the sample keys.
"""

from __future__ import annotations

import pickle
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from got_data.errors import GotDataError
from got_data.train.config import TrainConfig, dump_config, load_config

_STEP_RE = re.compile(r"^step-(\d{8})$")
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "config.yaml"


class CheckpointError(GotDataError):
    """A checkpoint folder is missing, incomplete or does not fit the model."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and _STEP_RE.match(p.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


@dataclass(frozen=True)
class DataPosition:
    """Where the data streams stand: how they are cut (world, loader workers, micro-batch), their seed,
    and how many micro-batches each rank has consumed."""

    world: int
    loader_workers: int
    batch_size: int
    seed: int
    batches_done: int

    def same_layout(self, other: "DataPosition") -> bool:
        return (self.world, self.loader_workers, self.batch_size) == (other.world, other.loader_workers, other.batch_size)

    def describe(self) -> str:
        return f"{self.world} worker(s) x {self.loader_workers} loader worker(s), micro-batch {self.batch_size}"


@dataclass
class TrainingState:
    step: int
    position: DataPosition
    optimizer: dict
    lr_scheduler: dict


def save_checkpoint(
    model, optimizer, lr_scheduler, step: int, position: DataPosition, config: TrainConfig, run_dir: Path
) -> Path:
    from safetensors.torch import save_file

    final = run_dir / checkpoint_name(step)
    tmp = run_dir / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.mllm.save_pretrained(tmp / "mllm_lora")
    save_file(
        {f"text.{k}": v.contiguous() for k, v in model.text_projector.state_dict().items()}
        | {f"pooled.{k}": v.contiguous() for k, v in model.pooled_projector.state_dict().items()},
        tmp / "projectors.safetensors",
    )
    model.unet.save_pretrained(tmp / "unet")
    torch.save(
        {
            "step": step,
            "position": asdict(position),
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_scheduler.state_dict(),
        },
        tmp / STATE_FILE,
    )
    dump_config(config, tmp / CONFIG_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def load_weights(model, checkpoint: Path) -> None:
    """Load the trained weights (LoRA, tokens, projectors, UNet) of a checkpoint into a freshly built model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = checkpoint / "mllm_lora" / "adapter_model.safetensors"
    unet_file = checkpoint / "unet" / "diffusion_pytorch_model.safetensors"
    projectors = checkpoint / "projectors.safetensors"
    for path in (adapter, unet_file, projectors):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {checkpoint} is incomplete: {path.name} is missing")
    result = set_peft_model_state_dict(model.mllm, load_file(adapter))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise CheckpointError(f"{adapter} does not fit the model: unexpected keys {unexpected[:3]}")
    try:
        model.unet.load_state_dict(load_file(unet_file))
        weights = load_file(projectors)
        model.text_projector.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("text.")})
        model.pooled_projector.load_state_dict({k[7:]: v for k, v in weights.items() if k.startswith("pooled.")})
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {checkpoint} does not fit the configured model: {exc}") from exc


def load_training_state(checkpoint: Path) -> TrainingState:
    """The saved step, data position and optimizer/scheduler state; never unpickles code."""
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} has no {STATE_FILE}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return TrainingState(
            step=int(state["step"]), position=DataPosition(**state["position"]),
            optimizer=state["optimizer"], lr_scheduler=state["lr_scheduler"],
        )
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path} is not a trainer state this version wrote (it may hold code, which is never loaded): {exc}"
        ) from exc


def checkpoint_config(checkpoint: Path) -> TrainConfig:
    path = checkpoint / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint} is not a training checkpoint (no {CONFIG_FILE})")
    return load_config(path)


def prune_checkpoints(run_dir: Path, keep: int | None) -> None:
    if keep is None:
        return
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
