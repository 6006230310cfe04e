"""Fidelity of every pipeline on the known-answer world. Prints a table and writes fidelity.json.

    .venv/bin/python bench/fidelity.py [--count 48] [--seed 1000] [--out out/bench-fidelity]
                                       [--vlm DIR --llm DIR]   (default: the committed world models)

1. Coordinate paths: each pipeline answered by the world oracle (perfect answers) in both box
   conventions, Qwen2-VL relative and Qwen2.5-VL absolute-on-resized, over all world image sizes: the
   scores must be ~1; a conversion bug shows as a drop here.
2. The trained tiny world models in real vLLM pools (CPU) on held-out world sets (a seed the
   training never used): the fidelity they reach.

Beside the three kinds' sets, a t2i set whose scenes repeat an object ("two red circles") is scored
per instance: instance recall and precision at IoU 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

# world set name -> (kind, repeated objects)
SETS = {"t2i": ("t2i", False), "t2i-repeats": ("t2i", True), "edit": ("edit", False), "multiturn": ("multiturn", False)}
T2I_COLUMNS = ("object_recall", "object_precision", "mean_iou", "iou50_share", "instance_recall", "instance_precision",
               "prompt_word_accuracy", "description_word_accuracy")
EDIT_COLUMNS = ("region_mean_iou", "region_iou50_share", "object_accuracy", "edit_type_accuracy", "step_count_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48, help="inputs per world set")
    parser.add_argument("--seed", type=int, default=1000, help="world seed (training used 0)")
    parser.add_argument("--out", type=Path, default=Path("out/bench-fidelity"))
    parser.add_argument("--vlm", default=None)
    parser.add_argument("--llm", default=None)
    args = parser.parse_args()

    from rich.console import Console

    from got_data.eval.fidelity import score_run
    from got_data.eval.world_run import annotate_and_score, start_world_pools
    from got_data.families import QWEN2_VL, QWEN25_VL
    from got_data.local_ray import start_local_ray
    from got_data.spec import load_spec
    from got_data.world.checkpoints import world_models
    from got_data.world.oracle import annotate_with_oracle
    from got_data.world.sets import WORLD_SPECS, read_truth, write_world_set

    console = Console()
    shutil.rmtree(args.out, ignore_errors=True)
    models = world_models()
    vlm, llm = args.vlm or models.vlm, args.llm or models.llm
    rows: list[tuple[str, str, dict]] = []
    sets = {name: write_world_set(args.out / f"{name}-set", kind, args.count, seed=args.seed, repeats=repeats)
            for name, (kind, repeats) in SETS.items()}
    start_local_ray(max(os.cpu_count() or 1, 4), 500 * 1024**2)
    for name, (kind, _) in SETS.items():
        for family in (QWEN2_VL, QWEN25_VL):
            out = args.out / f"{name}-oracle-{family}"
            annotate_with_oracle(load_spec(WORLD_SPECS[kind]), kind, sets[name], read_truth(args.out / f"{name}-set"),
                                 out, family=family)
            rows.append((name, f"oracle, {family} boxes", score_run(out, args.out / f"{name}-set")))
    pools = start_world_pools(vlm, llm, console)
    try:
        for name, (kind, _) in SETS.items():
            started = time.monotonic()
            scores = annotate_and_score(kind, sets[name], args.out / f"{name}-set", args.out / name, pools, console,
                                        show_progress=False)
            scores["seconds"] = time.monotonic() - started
            rows.append((name, "trained world models", scores))
    finally:
        for pool in pools.values():
            pool.shutdown()
    print(f"\nfidelity on held-out world sets: {args.count} inputs each, seed {args.seed}; models {vlm}, {llm}")
    for name, (kind, _) in SETS.items():
        columns = T2I_COLUMNS if kind == "t2i" else EDIT_COLUMNS
        shown = [c for c in columns if any(c in s for k, _, s in rows if k == name)]
        print(f"\n{name:12} {'answered by':30} {'records':>8} " + " ".join(f"{c[:18]:>18}" for c in shown))
        for k, label, scores in rows:
            if k != name:
                continue
            cells = " ".join(f"{scores[c]:18.3f}" if isinstance(scores.get(c), float) else f"{'n/a':>18}" for c in shown)
            print(f"{name:12} {label:30} {scores['records']:>4}/{scores['inputs']:<3} {cells}")
    (args.out / "fidelity.json").write_text(json.dumps([{"set": k, "answered_by": l, **s} for k, l, s in rows], indent=2))
    print(f"\nwrote {args.out / 'fidelity.json'}")


if __name__ == "__main__":
    main()
