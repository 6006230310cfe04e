"""Storage path: records/s with `--out` on the local disk and in a bucket of a real S3 server
(SeaweedFS on loopback), alternating round by round in one run, every model request answered
instantly by the world oracle, so the figures measure the output path, not the models.
Target: the bucket run >= 0.9x the local one.

    .venv/bin/python bench/object_store.py [--inputs 1200] [--rounds 3] [--samples-per-shard 200]

The bucket run stages each shard locally and uploads it whole when it is finished (commit protocol
in `got_data/annotate/output.py`); the manifest then reads every committed shard back from the bucket.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples-per-shard", type=int, default=200)
    args = parser.parse_args()

    from got_data.s3_server import start_s3_server

    work = Path(tempfile.mkdtemp(prefix="object-store-bench-"))
    server = start_s3_server(work / "weed")
    os.environ.update(server.env())  # before Ray starts, so every process reads the same store
    try:
        run(args, work, server)
    finally:
        server.stop()


def run(args: argparse.Namespace, work: Path, server) -> None:
    from got_data.annotate.launch import init_ray
    from got_data.spec import load_spec
    from got_data.world.oracle import annotate_with_oracle
    from got_data.world.sets import read_truth, write_world_set

    server.create_bucket("bench")
    images = write_world_set(work / "set", "t2i", args.inputs, seed=4)
    truth = read_truth(work / "set")
    init_ray(None, 2)
    spec = load_spec("t2i-world.yaml")

    def one_pass(out: str | Path) -> float:
        t0 = time.perf_counter()
        stats, _ = annotate_with_oracle(spec, "t2i", images, truth, out, samples_per_shard=args.samples_per_shard)
        assert stats["totals"]["samples"] == args.inputs, stats["totals"]
        return args.inputs / (time.perf_counter() - t0)

    one_pass(work / "cold")  # Ray workers start, imports
    rates: dict[str, list[float]] = {"local": [], "bucket": []}
    for round_no in range(args.rounds):
        order = ("local", "bucket") if round_no % 2 == 0 else ("bucket", "local")
        for where in order:
            out = work / f"out-{round_no}" if where == "local" else f"s3://bench/out-{round_no}"
            rates[where].append(one_pass(out))
            print(f"round {round_no + 1}, --out {where:>6}: {rates[where][-1]:6.1f} records/s")
    local, bucket = statistics.median(rates["local"]), statistics.median(rates["bucket"])
    print(f"\nt2i, {args.inputs} inputs, {args.samples_per_shard} samples per shard, instant oracle answers, "
          f"median of {args.rounds} rounds")
    print(f"--out local:  {local:6.1f} records/s")
    print(f"--out bucket: {bucket:6.1f} records/s")
    print(f"bucket / local: {bucket / local:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
