"""The trainer as a Ray Train job: one TorchTrainer worker per data-parallel rank (DDP; gloo on CPU).

Every worker runs the same `Trainer` loop as a single process, with its rank and world size. The run
folder (config `checkpoint.dir`) must be one folder every worker sees (a shared filesystem on a
cluster): rank 0 writes the checkpoints there (under `train.parallelism: fsdp` every rank writes its
shard, and this driver consolidates the last checkpoint once the job ends), and a worker group that Ray
Train restarts after a failure resumes from the newest one, so no step is counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from got_data.errors import GotDataError
from got_data.train.components import ensure_tiny_base
from got_data.train.config import TrainConfig, batch_plan

# gloo's sockets of a local run on the loopback interface, like the rest of the local Ray.
_LOCAL_ENV = {"GLOO_SOCKET_IFNAME": "lo"}
# Workers print through Ray's log forwarding only (Ray Train's print patch would repeat every line).
_WORKER_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
RAY_FOLDER = "_ray"  # Ray Train's own run state, inside the run folder


class DistributedTrainingError(GotDataError):
    """The distributed job failed (after Ray Train's restarts), or Ray could not be reached."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how wide the job runs: `--workers`, `--gpus-per-worker`, `--ray-address`."""

    workers: int
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    address: str | None = None
    max_failures: int = 3


def init_ray(address: str | None) -> bool:
    """Join `address`, or start a local Ray bound to loopback (`got_data.local_ray`); True when this call
    started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=True, runtime_env={"env_vars": dict(_WORKER_ENV)})
        return True
    from got_data.local_ray import start_local_ray

    start_local_ray(os.cpu_count() or 1, 256 * 1024**2, log_to_driver=True,
                    runtime_env={"env_vars": _LOCAL_ENV | _WORKER_ENV})
    return True


def _worker_loop(loop_config: dict) -> None:
    """What each Ray Train worker runs: the trainer with its rank, on its device."""
    import ray.train
    import ray.train.torch

    from got_data.train.config import config_from_dict
    from got_data.train.trainer import Trainer

    context = ray.train.get_context()
    device = str(ray.train.torch.get_device())
    config = config_from_dict(loop_config["config"])
    Trainer(config, log=print, rank=context.get_world_rank(), world=context.get_world_size(), device=device).run()


def run_distributed(config: TrainConfig, cluster: ClusterSettings, log: Callable[[str], None] = print) -> None:
    """Train `config` on `cluster.workers` Ray Train workers; raises DistributedTrainingError when the
    job fails for good."""
    plan = batch_plan(config.train, cluster.workers)  # refuse a batch that does not divide before Ray starts
    run_dir = Path(config.checkpoint.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.model.mllm.tiny is not None or config.model.diffusion.tiny is not None:
        ensure_tiny_base(config.model, config.data.resolution, run_dir / "base")  # once, not by every worker
    started = init_ray(cluster.address)
    try:
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        use_gpu = cluster.gpus_per_worker > 0
        resources = {"CPU": cluster.cpus_per_worker} | ({"GPU": cluster.gpus_per_worker} if use_gpu else {})
        log(f"training on {cluster.workers} Ray Train worker(s): global batch {plan.global_batch} = "
            f"{plan.workers} x batch {plan.batch_size} x grad_accum {plan.grad_accum}")
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"config": config.model_dump(mode="json")},
            scaling_config=ScalingConfig(num_workers=cluster.workers, use_gpu=use_gpu, resources_per_worker=resources),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            run_config=RunConfig(
                name="train", storage_path=str(run_dir / RAY_FOLDER),
                failure_config=FailureConfig(max_failures=cluster.max_failures),
            ),
        )
        try:
            trainer.fit()
        except Exception as exc:  # Ray Train wraps the worker's error in its own types
            raise DistributedTrainingError(f"distributed training failed: {exc}") from exc
    finally:
        if started:
            import ray

            ray.shutdown()
    if config.train.parallelism == "fsdp":
        consolidate_last(run_dir, log)


def consolidate_last(run_dir: Path, log: Callable[[str], None]) -> None:
    """Write the full weights of an FSDP run's last checkpoint, the one generate and init_from read."""
    from got_data.train.checkpoint import latest_checkpoint
    from got_data.train.sharded_checkpoint import consolidate

    last = latest_checkpoint(run_dir)
    if last is None:
        raise DistributedTrainingError(f"the fsdp run left no checkpoint in {run_dir} to consolidate")
    consolidate(last, log)
