"""Two Ray Train workers' first-step gradients (DDP over gloo) against one process on the same global batch.

Run as a script by tests/train/test_distributed.py (it starts its own Ray, on loopback, and stops it):
    python tests/train/ddp_gradients.py CONFIG.yaml OUT_DIR
Prints one JSON line: the keys each rank trained on and how far the gradients are apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from got_data.shards.reader import iter_samples  # noqa: E402
from got_data.train.config import load_config  # noqa: E402
from got_data.train.data import make_loader  # noqa: E402
from got_data.train.examples import build_example, collate  # noqa: E402
from got_data.train.trainer import Stepper, Trainer, make_encoder  # noqa: E402

WORLD = 2


def gradients(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def worker(loop_config: dict) -> None:
    """One rank: its first micro-batch of the run's data, forward and backward under DDP."""
    import ray.train
    import torch.distributed as dist

    config = load_config(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    trainer = Trainer(config, log=lambda _: None, rank=rank, world=WORLD)
    state = trainer.setup()
    encoder = make_encoder(config, state.model)
    batch = next(iter(make_loader(config.data, encoder, trainer.plan.batch_size, config.seed, rank=rank, world=WORLD)))
    Stepper(state.model, WORLD, "cpu", config).accumulate([batch], step=0)
    keys = [None] * WORLD
    dist.all_gather_object(keys, batch["keys"])
    if rank == 0:
        torch.save({"keys": keys, "grads": gradients(state.model)}, Path(loop_config["out"]) / "ddp.pt")


def single_process(config_path: Path, keys: list[str]) -> dict[str, torch.Tensor]:
    """The same global batch (the ranks' keys in rank order) in one process, one micro-batch."""
    config = load_config(config_path)
    trainer = Trainer(config, log=lambda _: None)
    state = trainer.setup()
    encoder = make_encoder(config, state.model)
    paths = [p for source in config.data.sources for p in source.shards]
    by_key = {s.key: s for s in iter_samples(paths) if s.key in set(keys)}
    examples = [build_example(by_key[k], encoder, config.data.resolution, seed=config.seed) for k in keys]
    batch = collate(examples, encoder.tokenizer.pad_token_id)
    Stepper(state.model, 1, "cpu", config).accumulate([batch], step=0)
    return gradients(state.model)


def main() -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from got_data.train.distributed import init_ray

    config_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = load_config(config_path)
    Trainer(config, log=lambda _: None).setup()  # builds the tiny base once, before the workers start
    init_ray(None)
    try:
        TorchTrainer(
            worker,
            train_loop_config={"config": str(config_path), "out": str(out)},
            scaling_config=ScalingConfig(num_workers=WORLD, resources_per_worker={"CPU": 1}),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(name="grads", storage_path=str(out / "ray")),
        ).fit()
    finally:
        import ray

        ray.shutdown()
    ddp = torch.load(out / "ddp.pt", weights_only=True)
    keys = [k for rank_keys in ddp["keys"] for k in rank_keys]
    single = single_process(config_path, keys)
    diffs = {n: (ddp["grads"][n] - g).abs().max().item() for n, g in single.items()}
    scale = max(g.abs().max().item() for g in single.values())
    print(json.dumps({
        "rank_keys": ddp["keys"], "params": len(single), "same_params": sorted(single) == sorted(ddp["grads"]),
        "max_abs_diff": max(diffs.values()), "max_abs_grad": scale,
        "nonzero_params": sum(g.abs().sum().item() > 0 for g in single.values()),
    }))


if __name__ == "__main__":
    main()
