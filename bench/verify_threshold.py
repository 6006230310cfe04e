"""Where to set `verify`'s threshold for a VLM: instance recall and precision at each threshold, from one run.

The world models annotate held-out t2i sets once with `verify` on at threshold -1 (every box is scored,
p(yes) - p(no), and kept); each threshold's figures then come from the boxes whose score exceeds it, a
record left with none counting as missing (the pipeline rejects it as `no_verified_box`). "off" is the
run's boxes unfiltered: what verify off gives. Choose on one seed, confirm on another.

    .venv/bin/python bench/verify_threshold.py --count 96 --seeds 1000 1001
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

THRESHOLDS = (None, -0.9, -0.6, -0.2, 0.0, 0.2, 0.6, 0.9)


def kept_records(records: dict, threshold: float | None) -> dict:
    """The records as the pipeline would leave them at `threshold`: objects keep the boxes scored above it."""
    kept = {}
    for ref, record in records.items():
        objects = []
        for obj in record.objects:
            scores = obj.box_scores or [1.0] * len(obj.boxes)
            boxes = [box for box, score in zip(obj.boxes, scores) if threshold is None or score > threshold]
            if boxes:
                objects.append(SimpleNamespace(phrase=obj.phrase, boxes=boxes))
        if objects:
            kept[ref] = SimpleNamespace(prompt=record.prompt, description=record.description, objects=objects)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=96, help="inputs per world set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001], help="world seeds (training used 0)")
    parser.add_argument("--sets", nargs="+", default=["t2i", "t2i-repeats"], choices=["t2i", "t2i-repeats"])
    parser.add_argument("--out", type=Path, default=Path("out/bench-verify-threshold"))
    args = parser.parse_args()

    from rich.console import Console

    from got_data.eval.fidelity import score_t2i
    from got_data.eval.world_run import annotate_and_score, start_world_pools
    from got_data.shards.reader import iter_samples
    from got_data.spec import load_spec
    from got_data.world.checkpoints import world_models
    from got_data.world.sets import WORLD_SPECS, read_truth, write_named_set

    console = Console()
    shutil.rmtree(args.out, ignore_errors=True)
    spec = load_spec(WORLD_SPECS["t2i"])
    for stage in spec.stages:
        if stage.name == "verify":
            stage.options.update({"enabled": True, "threshold": -1.0})
    models = world_models()
    pools = start_world_pools(models.vlm, models.llm, console)
    rows = []
    try:
        for seed in args.seeds:
            for name in args.sets:
                folder = args.out / f"{name}-{seed}"
                inputs = write_named_set(folder / "set", name, args.count, seed)
                annotate_and_score("t2i", inputs, folder / "set", folder / "out", pools, console, show_progress=False,
                                   spec=spec)
                records = {s.record.source.input_ref: s.record for s in iter_samples(sorted((folder / "out").glob("*.tar")))}
                truth = read_truth(folder / "set")
                for threshold in THRESHOLDS:
                    rows.append((name, seed, threshold, score_t2i(kept_records(records, threshold), truth)))
    finally:
        for pool in pools.values():
            pool.shutdown()
    print(f"\nverify threshold on held-out world sets: {args.count} inputs each; models {models.vlm}")
    print(f"{'set':12} {'seed':>5} {'threshold':>9} {'records':>8} {'boxes':>6} {'inst. recall':>12} {'inst. precision':>15}")
    for name, seed, threshold, s in rows:
        label = "off" if threshold is None else f"{threshold:+.1f}"
        precision = f"{s['instance_precision']:.3f}" if s["instance_precision"] is not None else "n/a"
        print(f"{name:12} {seed:>5} {label:>9} {s['records']:>4}/{s['inputs']:<3} {s['predicted_boxes']:>6} "
              f"{s['instance_recall']:>12.3f} {precision:>15}")


if __name__ == "__main__":
    main()
