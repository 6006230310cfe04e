"""Lengths the edit pipelines' descriptions reach on the known-answer world. Prints a table.

    .venv/bin/python bench/edit_lengths.py [--count 24] [--seed 1000] [--models] [--out out/bench-edit-lengths]

Each edit pipeline (edit, multiturn) runs on one held-out world set answered by the world oracle with
the world spec's short prompts (describe.txt, crop_describe.txt: what the real specs asked before they
asked for comprehensive descriptions) and with the real spec's detailed prompts (describe_detailed.txt,
crop_describe_detailed.txt; its minimum image side lowered to the world's scenes); `--models` adds the
committed trained world models on the world spec. Figures: mean words and sentences of the source and
final descriptions, mean words of the crop descriptions.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

KINDS = ("edit", "multiturn")
COLUMNS = ("description_words", "description_sentences", "crop_description_words")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24, help="inputs per world set")
    parser.add_argument("--seed", type=int, default=1000, help="world seed (training used 0)")
    parser.add_argument("--models", action="store_true", help="also run the committed trained world models")
    parser.add_argument("--out", type=Path, default=Path("out/bench-edit-lengths"))
    args = parser.parse_args()

    from rich.console import Console

    from got_data.eval.fidelity import score_run
    from got_data.eval.world_run import annotate_and_score, start_world_pools
    from got_data.local_ray import start_local_ray
    from got_data.spec import load_spec
    from got_data.world.checkpoints import world_models
    from got_data.world.oracle import annotate_with_oracle
    from got_data.world.sets import WORLD_SPECS, for_world_scenes, read_truth, write_world_set

    shutil.rmtree(args.out, ignore_errors=True)
    sets = {kind: write_world_set(args.out / f"{kind}-set", kind, args.count, seed=args.seed) for kind in KINDS}
    start_local_ray(max(os.cpu_count() or 1, 4), 500 * 1024**2)
    rows: list[tuple[str, str, dict]] = []
    for kind in KINDS:
        truth_dir = args.out / f"{kind}-set"
        for label, spec in ((f"oracle, {WORLD_SPECS[kind]} (short)", load_spec(WORLD_SPECS[kind])),
                            (f"oracle, {kind}.yaml (detailed)", for_world_scenes(load_spec(f"{kind}.yaml")))):
            out = args.out / f"{kind}-{len(rows)}"
            annotate_with_oracle(spec, kind, sets[kind], read_truth(truth_dir), out)
            rows.append((kind, label, score_run(out, truth_dir)))
    if args.models:
        console = Console()
        models = world_models()
        pools = start_world_pools(models.vlm, models.llm, console)
        try:
            for kind in KINDS:
                scores = annotate_and_score(kind, sets[kind], args.out / f"{kind}-set", args.out / f"{kind}-models",
                                            pools, console, show_progress=False)
                rows.append((kind, f"world models, {WORLD_SPECS[kind]}", scores))
        finally:
            for pool in pools.values():
                pool.shutdown()
    print(f"\ndescription lengths on held-out world sets: {args.count} inputs each, seed {args.seed}")
    print(f"{'pipeline':10} {'answered by':40} {'records':>8} " + " ".join(f"{c:>24}" for c in COLUMNS))
    for kind, label, scores in rows:
        cells = " ".join(f"{scores[c]:24.2f}" if isinstance(scores.get(c), float) else f"{'n/a':>24}" for c in COLUMNS)
        print(f"{kind:10} {label:40} {scores['records']:>4}/{scores['inputs']:<3} {cells}")


if __name__ == "__main__":
    main()
