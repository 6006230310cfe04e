"""Training step time and peak memory of the GoT model at a chosen size, on synthetic batches; or the
samples/s of the real training loop in one process and as a Ray Train job.

    python bench/train_step.py                        # tiny config on CPU
    python bench/train_step.py --size 3b --device cuda --mixed-precision bf16 --resolution 1024 --batch 1
    python bench/train_step.py --workers 1 2          # tiny config, bundled shards: 1 process vs 2 Ray workers
    python bench/train_step.py --workers 1 2 --parallelism ddp fsdp   # and the 2 workers under FSDP too

With `--workers`, every run trains the same global batch (8) for `--steps` steps on the bundled test
shards and reports samples/s over the steps after the first two (metrics.jsonl's step times). On a
2-core machine two workers share the cores: the figure shows the distributed path's overhead (Ray
Train, DDP all-reduce or FSDP all-gathers and reduce-scatters over gloo), not scaling.

`--size 3b` builds Qwen2.5-VL-3B-shaped and SDXL-UNet-shaped models with random weights (nothing is
downloaded); the tiny tokenizer stands in for Qwen's, with the embedding padded to Qwen's 151,936 rows.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from got_data.records import Annotation, Box, render_got  # noqa: E402
from got_data.train.conditioning import got_boxes, mask_canvases, to_model_range  # noqa: E402
from got_data.train.config import config_from_dict  # noqa: E402
from got_data.train.examples import TrainingExample, collate  # noqa: E402
from got_data.train.trainer import build_model, make_encoder  # noqa: E402

SIZES = {
    "tiny": {},
    "3b": {
        "mllm": {"tiny": {"hidden_size": 2048, "intermediate_size": 11008, "num_layers": 36, "num_heads": 16,
                          "num_kv_heads": 2, "vision_depth": 32, "vision_hidden_size": 1280,
                          "vision_intermediate_size": 3420, "vision_heads": 16, "vocab_size": 151936},
                 "lora": {"r": 32, "alpha": 32, "dropout": 0.05}},
        "diffusion": {"tiny": {"unet_channels": [320, 640, 1280], "cross_attention_dim": 2048, "pooled_dim": 1280,
                               "time_embed_dim": 256, "vae_channels": [128, 256, 512, 512], "norm_groups": 32,
                               "layers_per_block": 2, "transformer_layers": [1, 2, 10], "attention_heads": [5, 10, 20]}},
        "num_gen_tokens": 64,
    },
}


def synthetic_batch(encoder, batch: int, resolution: int, got_words: int) -> dict:
    examples = []
    for i in range(batch):
        plain = " ".join(["a red kite above the green field"] * max(1, got_words // 6))
        box = Box(x1=100, y1=100, x2=600, y2=700)
        got, _ = render_got(plain, [Annotation(2, 10, (box,)), Annotation(27, 32, (Box(x1=0, y1=500, x2=999, y2=999),))])
        encoded = encoder.with_got("a red kite over a field", None, got)
        image = torch.rand(3, resolution, resolution) * 2 - 1
        examples.append(TrainingExample(
            key=str(i), kind="t2i", input_ids=encoded.input_ids, labels=encoded.labels, pixel_values=None,
            image_grid_thw=None, target=image, reference=torch.full_like(image, -1.0),
            canvases=to_model_range(mask_canvases(got_boxes(got), resolution, resolution)),
        ))
    return collate(examples, encoder.tokenizer.pad_token_id)


WORKERS_GLOBAL_BATCH = 8


def loop_samples_per_s(workers: int, steps: int, parallelism: str = "ddp") -> float:
    """samples/s of `got-data train` on the tiny config: one process for 1, a Ray Train job beyond."""
    import json

    from got_data.train.distributed import ClusterSettings, run_distributed
    from got_data.train.trainer import METRICS_FILE, Trainer

    data = yaml.safe_load((ROOT / "pipelines" / "train-tiny.yaml").read_text())
    data["data"]["workers"] = 0
    data["data"]["sources"] = [
        {"name": kind, "shards": [str(ROOT / "tests" / "data" / "shards" / kind)], "weight": 1.0}
        for kind in ("t2i", "edit")
    ]
    data["train"].update(steps=steps, batch_size=2, global_batch=WORKERS_GLOBAL_BATCH, log_every=steps, parallelism=parallelism)
    with tempfile.TemporaryDirectory() as run:
        data["checkpoint"] = {"dir": run, "every": steps, "keep": 1}
        config = config_from_dict(data)
        if workers == 1:
            Trainer(config, log=lambda _: None).run()
        else:
            run_distributed(config, ClusterSettings(workers=workers), log=lambda _: None)
        times = [json.loads(line)["time"] for line in (Path(run) / METRICS_FILE).read_text().splitlines()]
    warm = times[2:]
    return (len(warm) - 1) * WORKERS_GLOBAL_BATCH / (warm[-1] - warm[0])


def compare_workers(counts: list[int], steps: int, parallelisms: list[str]) -> None:
    print(f"tiny config, global batch {WORKERS_GLOBAL_BATCH}, {steps} steps, {os.cpu_count()} CPU cores")
    for count in counts:
        if count == 1:
            print(f"1 process, no Ray: {loop_samples_per_s(count, steps):.1f} samples/s")
            continue
        for parallelism in parallelisms:
            rate = loop_samples_per_s(count, steps, parallelism)
            print(f"{count} Ray Train workers ({parallelism.upper()}, gloo): {rate:.1f} samples/s")
    print("GPU (real-size step time and memory): not measured this session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "pipelines" / "train-tiny.yaml")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--got-words", type=int, default=150, help="GoT length in words (the paper's average ~150)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", help="compare the training loop at these worker counts")
    parser.add_argument("--parallelism", nargs="+", choices=["ddp", "fsdp"], default=["ddp"],
                        help="with --workers: run each count above 1 under these")
    args = parser.parse_args()
    if args.workers:
        compare_workers(args.workers, max(args.steps, 12), args.parallelism)
        return

    data = yaml.safe_load(args.config.read_text())
    for part, update in SIZES[args.size].items():
        if isinstance(update, dict):
            data["model"][part].update(update)
        else:
            data["model"][part] = update
    data["model"]["mllm"]["gradient_checkpointing"] = args.gradient_checkpointing
    data["model"]["diffusion"]["gradient_checkpointing"] = args.gradient_checkpointing
    data["device"], data["mixed_precision"] = args.device, args.mixed_precision
    if args.resolution:
        data["data"]["resolution"] = args.resolution
    with tempfile.TemporaryDirectory() as run:
        data["checkpoint"]["dir"] = run
        config = config_from_dict(data)
        t0 = time.perf_counter()
        model = build_model(config, Path(run))
        build_s = time.perf_counter() - t0
        encoder = make_encoder(config, model)
        batch = synthetic_batch(encoder, args.batch, config.data.resolution, args.got_words)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05)
        amp = torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16")
        cuda = torch.device(args.device).type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for step in range(args.steps + 1):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            with amp:
                loss = model.training_loss(batch, config.train, config.seed, step)
            loss.total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        step = sum(times[1:]) / args.steps  # the first step (allocator warm-up) is left out
        trainable = sum(p.numel() for p in params)
        total = sum(p.numel() for p in model.parameters())
        peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
        print(f"size {args.size} device {args.device} precision {args.mixed_precision} batch {args.batch} "
              f"resolution {config.data.resolution} gen tokens {config.model.num_gen_tokens} "
              f"sequence {batch['input_ids'].shape[1]} tokens")
        print(f"params {total / 1e6:.1f}M (trainable {trainable / 1e6:.1f}M), model build {build_s:.1f} s")
        print(f"step {step * 1000:.1f} ms ({args.batch / step:.2f} samples/s), first step {times[0] * 1000:.1f} ms")
        print(f"peak memory {peak:.2f} GiB ({'CUDA allocated' if cuda else 'process RSS'})")


if __name__ == "__main__":
    main()
