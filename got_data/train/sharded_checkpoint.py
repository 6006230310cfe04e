"""Checkpoints of an FSDP run: every rank writes its shard, any world size reads them back, one process
consolidates them into the weights `generate` loads.

`<run>/step-NNNNNNNN/sharded/` is written by `torch.distributed.checkpoint` through its safetensors
storage (one `shard-0000R-...safetensors` per rank, the offsets of each shard in the file's JSON
header): safetensors holds tensors only and its reader never unpickles (DCP's default `.metadata` file
is a pickle, so it is not used). The shards hold the trained weights (`model.<name>`) and the AdamW
moments and step counts (`optim.<key>.<name>`); the optimizer's hyperparameters, the step, the data
position and the LR schedule go to rank 0's `trainer_state.pt` (weights_only), the config beside it.
The whole folder is written under a hidden name and renamed by rank 0 once every rank has written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from got_data.train.checkpoint import (
    CONFIG_FILE,
    CONSOLIDATED_DIR,
    SHARDED_DIR,
    CheckpointError,
    DataPosition,
    TrainingState,
    checkpoint_config,
    checkpoint_name,
    commit,
    is_sharded,
    load_training_state,
    partial_path,
    write_trainer_state,
    write_weights,
)
from got_data.train.config import TrainConfig, dump_config

_MODEL, _OPTIM = "model.", "optim."


def _trained_names(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _flat_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tensors a sharded checkpoint holds (DTensors: each rank its shard), and the nested optimizer
    state dict they were taken from (the optimizer's state is created if it has none yet)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim = get_state_dict(model, optimizer)
    optim_state = cast(dict[str, Any], optim)  # {"state": {name: {key: tensor}}, "param_groups": [...]}
    tensors: dict[str, Any] = {_MODEL + name: model_state[name] for name in _trained_names(model)}
    for name, values in optim_state["state"].items():
        for key, value in values.items():
            tensors[f"{_OPTIM}{key}.{name}"] = value
    return tensors, optim_state


def _hyperparameters(optimizer_state: dict) -> dict:
    return {"param_groups": [{k: v for k, v in group.items() if k != "params"} for group in optimizer_state["param_groups"]]}


def save_sharded_checkpoint(
    model: nn.Module, optimizer: torch.optim.Optimizer, lr_scheduler, step: int, position: DataPosition,
    config: TrainConfig, run_dir: Path, rank: int,
) -> Path:
    """Every rank calls this (it is collective); rank 0 writes the small files and commits the folder."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    final = run_dir / checkpoint_name(step)
    tmp = partial_path(final)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    tensors, optim_state = _flat_state(model, optimizer)
    dcp.save(tensors, storage_writer=HuggingFaceStorageWriter(str(tmp / SHARDED_DIR), save_distributed=True))
    if rank == 0:  # dcp.save returns once every rank's shard is written
        write_trainer_state(tmp, step, position, _hyperparameters(optim_state), lr_scheduler.state_dict())
        dump_config(config, tmp / CONFIG_FILE)
        commit(tmp, final)
    dist.barrier()
    return final


def load_sharded_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, lr_scheduler, checkpoint: Path) -> TrainingState:
    """Every rank calls this: the trained weights and optimizer state resharded to this run's world size,
    the schedule restored; returns the saved step and data position."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    if not is_sharded(checkpoint):
        raise CheckpointError(
            f"{checkpoint} was written by a one-process or ddp run, this run is fsdp: start a new run folder with "
            f"init_from: {checkpoint} (its weights, a fresh optimizer), or resume it with train.parallelism ddp"
        )
    state = load_training_state(checkpoint)
    tensors, optim_state = _flat_state(model, optimizer)
    saved_groups = state.optimizer.get("param_groups", [])
    if len(saved_groups) != len(optim_state["param_groups"]):
        raise CheckpointError(f"{checkpoint} has {len(saved_groups)} optimizer group(s), this run {len(optim_state['param_groups'])}")
    _read(tensors, checkpoint, no_dist=False)
    names = _trained_names(model)
    for name, values in optim_state["state"].items():
        for key in values:
            values[key] = tensors[f"{_OPTIM}{key}.{name}"]
    for group, saved in zip(optim_state["param_groups"], saved_groups):
        group.update(saved)
    set_state_dict(
        model, optimizer, model_state_dict={name: tensors[_MODEL + name] for name in names},
        optim_state_dict=optim_state, options=StateDictOptions(strict=False),  # frozen weights: from the base model
    )
    lr_scheduler.load_state_dict(state.lr_scheduler)
    return state


def _read(tensors: dict[str, Any], checkpoint: Path, no_dist: bool) -> None:
    """Fill `tensors` in place from the shards (collective unless `no_dist`), resharded to their layout."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        dcp.load(tensors, storage_reader=HuggingFaceStorageReader(str(checkpoint / SHARDED_DIR)), no_dist=no_dist)
    except (CheckpointException, RuntimeError, KeyError, ValueError, AssertionError) as exc:
        raise CheckpointError(f"{checkpoint / SHARDED_DIR} does not fit the configured model: {exc}") from exc


def consolidate(checkpoint: Path, log: Callable[[str], None] = print) -> Path:
    """Gather a sharded checkpoint's trained weights into a full model in this one process (no process
    group; the CPU needs the whole model, as generate does) and write them to `<checkpoint>/consolidated/`,
    the layout `load_weights` reads."""
    from got_data.train.trainer import build_model

    if not is_sharded(checkpoint):
        raise CheckpointError(f"{checkpoint} has no {SHARDED_DIR}/: only an fsdp run's checkpoints need consolidating")
    config = checkpoint_config(checkpoint)
    model = build_model(config, checkpoint.parent, "cpu")
    tensors = {_MODEL + name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    _read(tensors, checkpoint, no_dist=True)
    final = checkpoint / CONSOLIDATED_DIR
    tmp = partial_path(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_weights(model, tmp)
    commit(tmp, final)
    log(f"consolidated {checkpoint} into {final}")
    return final
