"""Known-answer training of the SSGM: the box-hit rates of the tiny GoT model trained with and without
spatial guidance (the paper's "no SSGM" row), on held-out one-object world scenes. CPU, a few minutes.

    .venv/bin/python bench/train_fidelity.py [--out out/bench-train-fidelity] [--ssgm-steps 600] [--seed 0]

Steps (got_data/world/ssgm_fidelity.py): world shards annotated by the oracle through the real T2I
pipeline (a local Ray, stopped before training); a tiny VAE fitted on the training pictures; the tiny
GoT model trained twice on the same shards, spatial guidance on and off; every held-out scene drawn
from its true GoT and from its GoT with the box moved to the farthest corner. Columns:
- box hit: the drawing's colour at the object's pixels is nearest the object's true colour (of the six
  world colours and "no object"; chance 1/7);
- moved hit: the same in the moved box; vacated: the old box reads as "no object"; both: the two at once;
- obj in box, obj moved: the same with any object colour counted (where, apart from naming the colour).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import fields
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from got_data.world.ssgm_fidelity import KnownAnswerSettings, make_world_data, train_and_score  # noqa: E402

COLUMNS = (("box hit", "box_hit_rate"), ("moved hit", "moved_hit_rate"), ("vacated", "vacated_rate"),
           ("both", "moved_and_vacated_rate"), ("obj in box", "object_in_box_rate"),
           ("obj moved", "object_moved_rate"), ("final mse", "final_mse"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-train-fidelity"))
    defaults = KnownAnswerSettings()
    for field in fields(KnownAnswerSettings):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name))
    args = parser.parse_args()
    settings = KnownAnswerSettings(**{f.name: getattr(args, f.name) for f in fields(KnownAnswerSettings)})
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    import ray

    from got_data.local_ray import start_local_ray

    start_local_ray(2, 256 * 1024**2)
    try:
        data = make_world_data(args.out, settings)
    finally:
        ray.shutdown()  # training needs the memory and the cores
    print(f"world shards in {time.perf_counter() - started:.0f} s", flush=True)
    report = train_and_score(args.out, data, settings, log=lambda line: print(line, flush=True))
    print(f"\n{settings}\nwall {time.perf_counter() - started:.0f} s; tiny VAE reconstruction MSE "
          f"{report['vae_reconstruction_mse']:.4f}; chance {report['ssgm']['chance_hit_rate']:.2f}; "
          f"{report['ssgm']['scenes']} held-out scenes")
    print(f"{'model':10}" + "".join(f"{title:>12}" for title, _ in COLUMNS))
    for name in ("ssgm", "no_ssgm"):
        print(f"{name:10}" + "".join(f"{report[name][key]:>12.3f}" for _, key in COLUMNS))


if __name__ == "__main__":
    main()
