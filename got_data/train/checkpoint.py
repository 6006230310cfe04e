"""Checkpoints that resume exactly: weights, optimizer, LR schedule, RNG states and data position.

Layout of `<run>/step-NNNNNNNN/` (a one-process or DDP run):
    mllm_lora/               peft adapter (LoRA + the trained image-generation token embeddings)
    projectors.safetensors   text and pooled projectors
    unet/                    the 12-channel UNet (diffusers format)
    trainer_state.pt         step, data position, optimizer and scheduler state (tensors, numbers,
                             strings only: it loads with torch.load(weights_only=True), so a file
                             dropped into a run folder cannot run code on resume)
    config.yaml              the resolved training config
An FSDP run (`sharded_checkpoint.py`) writes `sharded/` (every rank's safetensors shard of the trained
weights and optimizer moments) in place of the three weight entries, and `trainer_state.pt` keeps the
optimizer's hyperparameters only; consolidating it adds `consolidated/` with the three weight entries,
which is what `load_weights` (generate, init_from) reads.
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
SHARDED_DIR = "sharded"
CONSOLIDATED_DIR = "consolidated"


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


def partial_path(final: Path) -> Path:
    """The hidden name a checkpoint (or a part of one) is written under before it is renamed into place."""
    return final.parent / f".{final.name}.partial"


def commit(tmp: Path, final: Path) -> Path:
    """Move a finished temporary folder to its final name (replacing an older one of that name)."""
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def write_weights(model, folder: Path) -> None:
    """The trained weights in the layout `load_weights` reads: peft adapter, projectors, UNet."""
    from safetensors.torch import save_file

    model.mllm.save_pretrained(folder / "mllm_lora")
    save_file(
        {f"text.{k}": v.contiguous() for k, v in model.text_projector.state_dict().items()}
        | {f"pooled.{k}": v.contiguous() for k, v in model.pooled_projector.state_dict().items()},
        folder / "projectors.safetensors",
    )
    model.unet.save_pretrained(folder / "unet")


def write_trainer_state(folder: Path, step: int, position: DataPosition, optimizer: dict, lr_scheduler: dict) -> None:
    torch.save(
        {"step": step, "position": asdict(position), "optimizer": optimizer, "lr_scheduler": lr_scheduler},
        folder / STATE_FILE,
    )


def save_checkpoint(
    model, optimizer, lr_scheduler, step: int, position: DataPosition, config: TrainConfig, run_dir: Path
) -> Path:
    final = run_dir / checkpoint_name(step)
    tmp = partial_path(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_weights(model, tmp)
    write_trainer_state(tmp, step, position, optimizer.state_dict(), lr_scheduler.state_dict())
    dump_config(config, tmp / CONFIG_FILE)
    return commit(tmp, final)


def is_sharded(checkpoint: Path) -> bool:
    """Written by an FSDP run: every rank's shard in `sharded/`."""
    return (checkpoint / SHARDED_DIR).is_dir()


def weights_folder(checkpoint: Path) -> Path:
    """Where a checkpoint's full weights are: the folder itself, or an FSDP checkpoint's `consolidated/`."""
    if not is_sharded(checkpoint):
        return checkpoint
    folder = checkpoint / CONSOLIDATED_DIR
    if not folder.is_dir():
        raise CheckpointError(
            f"{checkpoint} is a sharded (fsdp) checkpoint without consolidated weights: "
            f"run `got-data consolidate --checkpoint {checkpoint}` first"
        )
    return folder


def load_weights(model, checkpoint: Path) -> None:
    """Load the trained weights (LoRA, tokens, projectors, UNet) of a checkpoint into a freshly built model
    (an FSDP checkpoint's consolidated ones)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = weights_folder(checkpoint)
    adapter = folder / "mllm_lora" / "adapter_model.safetensors"
    unet_file = folder / "unet" / "diffusion_pytorch_model.safetensors"
    projectors = folder / "projectors.safetensors"
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
