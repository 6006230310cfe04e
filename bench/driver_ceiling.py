"""Orchestration ceiling: the real runner, decode tasks, stages and shard writer with the world
oracle's instant answers (no model cost), so the figures are what one driver process can carry.

Prints records/s and the driver process's CPU-ms per record (its threads included) at the runner's
default in-flight bound (`auto`: sized from the pools and CPUs, annotate/in_flight.py) and with the
bound lifted, alternating the two round by round in one run
(a shared 2-core machine swings between passes; side by side is the only fair comparison).

    .venv/bin/python bench/driver_ceiling.py [--inputs 1600] [--kind t2i|edit|multiturn] [--lifted 256] [--rounds 3]

Little's law: with instant answers, records/s = in-flight / latency of one input through decode
and the stages; when the driver's loop waits in epoll most of the time, the bound sets the pace.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)


def driver_cpu_s() -> float:
    """User + system CPU of this process (the driver), all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_pass(spec, kind: str, input_path: Path, truth: dict, out: Path, bound: int | str) -> tuple[float, float, int]:
    """(records/s, driver CPU-ms per record, records) of one annotate run into a fresh folder; prints
    what an `auto` bound came to."""
    from got_data.world.oracle import annotate_with_oracle

    cpu0, t0 = driver_cpu_s(), time.perf_counter()
    stats, _ = annotate_with_oracle(spec, kind, input_path, truth, out, max_images_in_flight=bound)
    wall, cpu = time.perf_counter() - t0, driver_cpu_s() - cpu0
    records = stats["run"]["records"]
    if bound != stats["run"]["max_images_in_flight"]:
        print(f"  (bound {bound} came to {stats['run']['max_images_in_flight']} inputs in flight)")
    return records / wall, 1000 * cpu / max(records, 1), records


def main() -> None:
    from got_data.annotate.launch import init_ray
    from got_data.annotate.runner import RunOptions
    from got_data.spec import load_spec
    from got_data.world.sets import read_truth, write_world_set

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1600)
    parser.add_argument("--kind", choices=("t2i", "edit", "multiturn"), default="t2i")
    parser.add_argument("--lifted", type=int, default=256, help="the lifted in-flight bound")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    default_bound = RunOptions(out_dir=Path(".")).max_images_in_flight
    work = Path(tempfile.mkdtemp(prefix="driver-ceiling-"))
    t0 = time.perf_counter()
    input_path = write_world_set(work / "set", args.kind, args.inputs, seed=3)
    truth = read_truth(work / "set")
    print(f"world set: {args.inputs} {args.kind} inputs in {time.perf_counter() - t0:.1f} s")
    init_ray(None, 2)
    spec = load_spec(f"{args.kind}-world.yaml")
    rate, cpu_ms, _ = one_pass(spec, args.kind, input_path, truth, work / "cold", default_bound)
    print(f"cold first pass (Ray workers start, imports; what a one-shot timing sees), bound {default_bound}: "
          f"{rate:.1f} records/s, driver {cpu_ms:.2f} CPU-ms/record")
    results: dict[int | str, list[tuple[float, float]]] = {default_bound: [], args.lifted: []}
    for round_no in range(args.rounds):
        order = (default_bound, args.lifted) if round_no % 2 == 0 else (args.lifted, default_bound)
        for bound in order:
            rate, cpu_ms, records = one_pass(spec, args.kind, input_path, truth, work / f"out-{round_no}-{bound}", bound)
            results[bound].append((rate, cpu_ms))
            print(f"round {round_no + 1}, bound {bound:>4}: {records} records, {rate:6.1f} records/s, "
                  f"driver {cpu_ms:.2f} CPU-ms/record")
    print(f"\n{args.kind}, {args.inputs} inputs, instant oracle answers, median of {args.rounds} rounds")
    print(f"{'in-flight bound':>16} {'records/s':>10} {'driver CPU-ms/record':>21}")
    for bound, rows in results.items():
        label = f"{bound} (default)" if bound == default_bound else f"{bound} (lifted)"
        print(f"{label:>16} {statistics.median(r for r, _ in rows):>10.1f} {statistics.median(c for _, c in rows):>21.2f}")
    ratio = statistics.median(r for r, _ in results[default_bound]) / statistics.median(r for r, _ in results[args.lifted])
    print(f"default / lifted throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
