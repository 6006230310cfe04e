"""Orchestration ceiling: the real runner, decode tasks, stages and shard writer with the world
oracle's instant answers (no model cost), so the figures are what the orchestration processes carry.

Four configurations, alternating round by round in one run (a shared 2-core machine swings between
passes; side by side is the only fair comparison), on a local two-node Ray cluster
(`ray.cluster_utils.Cluster`, both nodes on this machine):
- the single driver at the default in-flight bound (`auto`, annotate/in_flight.py) and with it lifted;
- 1 and 2 annotator actors (annotate/annotators.py; `auto` bound each), the driver only coordinating.
Each prints records/s, the driver's CPU-ms per record and each annotator process's (getrusage of
that process, all its threads; decode tasks run in Ray workers and are counted in neither), the
latter also after its first record, which leaves out a fresh actor's process warming up (lazy
imports, first-use caches) and its run opening: a cost per partition, not per record.

    .venv/bin/python bench/driver_ceiling.py [--inputs 1600] [--kind t2i|edit|multiturn] [--lifted 1024] [--rounds 3]

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
from dataclasses import dataclass
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)


def driver_cpu_s() -> float:
    """User + system CPU of this process (the driver), all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Config:
    label: str
    bound: int | str
    annotators: int | None  # None: the single driver runs the pipeline itself


@dataclass(frozen=True)
class Pass:
    rate: float  # records/s
    driver_ms: float  # driver CPU-ms per record
    annotator_ms: tuple[float, ...]  # each annotator's CPU-ms per record it wrote
    # the same after its first record (its process warming up and its run opening left out): the cost
    # per record that a long partition converges to
    annotator_steady_ms: tuple[float, ...]
    records: int


def one_pass(spec, kind: str, input_path: Path, truth: dict, out: Path, config: Config) -> Pass:
    """One annotate run into a fresh folder; prints what an `auto` bound came to."""
    from got_data.world.oracle import annotate_with_oracle

    cpu0, t0 = driver_cpu_s(), time.perf_counter()
    stats, _ = annotate_with_oracle(spec, kind, input_path, truth, out, max_images_in_flight=config.bound,
                                    annotators=config.annotators)
    wall, cpu = time.perf_counter() - t0, driver_cpu_s() - cpu0
    records = stats["run"]["records"]
    if config.bound != stats["run"]["max_images_in_flight"]:
        print(f"  ({config.label}: bound {config.bound} came to {stats['run']['max_images_in_flight']} inputs in flight)")
    annotators = tuple(1000 * a["cpu_s"] / max(a["work"]["records"], 1) for a in stats.get("annotators", []))
    steady = tuple(1000 * (a["cpu_s"] - a["start_cpu_s"]) / max(a["work"]["records"] - 1, 1)
                   for a in stats.get("annotators", []))
    return Pass(records / wall, 1000 * cpu / max(records, 1), annotators, steady, records)


def start_cluster(cpus_per_node: int):
    """A local Ray cluster of two nodes (head + one), joined by this process."""
    import ray
    from ray.cluster_utils import Cluster

    from got_data.local_ray import LOOPBACK_ENV

    os.environ.update(LOOPBACK_ENV)
    node = {"num_cpus": cpus_per_node, "object_store_memory": 300 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def _annotators_text(p: Pass) -> str:
    if not p.annotator_ms:
        return ""
    return (", annotators " + " / ".join(f"{ms:.2f}" for ms in p.annotator_ms) + " CPU-ms/record (after the first: "
            + " / ".join(f"{ms:.2f}" for ms in p.annotator_steady_ms) + ")")


def main() -> None:
    import ray

    from got_data.annotate.runner import RunOptions
    from got_data.spec import load_spec
    from got_data.world.sets import read_truth, write_world_set

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1600)
    parser.add_argument("--kind", choices=("t2i", "edit", "multiturn"), default="t2i")
    parser.add_argument("--lifted", type=int, default=1024, help="the lifted in-flight bound (above auto's 256 here)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    default_bound = RunOptions(out_dir=Path(".")).max_images_in_flight
    configs = [Config("driver, default bound", default_bound, None), Config("driver, bound lifted", args.lifted, None),
               Config("1 annotator", default_bound, 1), Config("2 annotators", default_bound, 2)]
    work = Path(tempfile.mkdtemp(prefix="driver-ceiling-"))
    t0 = time.perf_counter()
    input_path = write_world_set(work / "set", args.kind, args.inputs, seed=3)
    truth = read_truth(work / "set")
    print(f"world set: {args.inputs} {args.kind} inputs in {time.perf_counter() - t0:.1f} s")
    cluster = start_cluster(max(os.cpu_count() or 1, 2))
    try:
        spec = load_spec(f"{args.kind}-world.yaml")
        for config in (configs[0], configs[3]):  # Ray workers start, imports: what a one-shot timing sees
            cold = one_pass(spec, args.kind, input_path, truth, work / f"cold-{config.annotators}", config)
            print(f"cold first pass, {config.label}: {cold.rate:.1f} records/s, driver {cold.driver_ms:.2f} "
                  f"CPU-ms/record{_annotators_text(cold)}")
        results: dict[str, list[Pass]] = {c.label: [] for c in configs}
        for round_no in range(args.rounds):
            order = configs if round_no % 2 == 0 else configs[::-1]
            for config in order:
                out = work / f"out-{round_no}-{config.label.replace(' ', '-').replace(',', '')}"
                p = one_pass(spec, args.kind, input_path, truth, out, config)
                results[config.label].append(p)
                print(f"round {round_no + 1}, {config.label:>22}: {p.records} records, {p.rate:6.1f} records/s, "
                      f"driver {p.driver_ms:.2f} CPU-ms/record{_annotators_text(p)}")
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"\n{args.kind}, {args.inputs} inputs, instant oracle answers, 2-node local cluster, "
          f"median of {args.rounds} rounds")
    print(f"{'configuration':>24} {'records/s':>10} {'driver CPU-ms/rec':>18} {'annotator CPU-ms/rec (each)':>28} "
          f"{'after the first record':>24}")

    def each(rows: list[Pass], figure: str) -> str:
        if not rows[0].annotator_ms:
            return ""
        return " / ".join(f"{statistics.median(getattr(p, figure)[i] for p in rows):.2f}"
                          for i in range(len(rows[0].annotator_ms)))

    for config in configs:
        rows = results[config.label]
        print(f"{config.label:>24} {statistics.median(p.rate for p in rows):>10.1f} "
              f"{statistics.median(p.driver_ms for p in rows):>18.2f} {each(rows, 'annotator_ms'):>28} "
              f"{each(rows, 'annotator_steady_ms'):>24}")
    rate = {c.label: statistics.median(p.rate for p in results[c.label]) for c in configs}
    print(f"default / lifted throughput (single driver): {rate[configs[0].label] / rate[configs[1].label]:.2f}")


if __name__ == "__main__":
    main()
