"""Many annotators instead of one driver: the input split into partitions, each run in a Ray actor.

An annotator (`Annotator`, one Ray actor per partition, placed round robin over the cluster's nodes)
opens the source itself and walks its share of the listing (`partitions.py`), decodes on Ray workers,
runs the stages against the SHARED model pools (their engines reached through `PoolHandle`s, so no
request or image passes through the driver) and writes its own shards (`got-pNNN-NNNNNN.tar`), its
own journal, rejects and statistics log under `_state/pNNN/` (`PipelineRun` with a `Partition`).

The driver (`AnnotatorsRun`) only assigns partitions, shows their progress (the single-process run's
line: records/s and each pool's records/s, their counts summed on its clock), and at the end writes
what spans the whole output: the manifest, the wids index, the dataset card, `rejects.parquet`
merged from every journal, and `stats.json` (the annotators' work summed as `run`, and each
annotator's own figures, its CPU time included, under `annotators`).

Only the pools' owner (the driver's pool) starts or replaces engines; when an engine dies, the owner
replaces it and the driver sends every annotator the new handles (`refresh_pools`), so the
annotators' attached pools use the replacement (not only drop the dead one).

Resume is per partition (each annotator resumes its own journal), and an input that any journal of
the output lists as done is skipped (`output_journals.py`), so a rerun with another number of
annotators, or with the single driver, lands every input exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.progress import Progress

from got_data.annotate.heap import settle_heap
from got_data.annotate.in_flight import AUTO, parse_auto_or_count
from got_data.annotate.journal import write_rejects_parquet
from got_data.annotate.output import OutputFolder
from got_data.annotate.output_journals import OutputJournals
from got_data.annotate.partitions import Partition, split
from got_data.annotate.progress import live_fields, start_progress
from got_data.annotate.runner import PipelineRun, RunOptions, attempt_info, pool_models
from got_data.annotate.stats import LiveCounts, RunStats, process_cpu_seconds
from got_data.annotate.stats_log import LOG_FILE, STATS_FILE, StatsLog, write_stats
from got_data.engines.pool import PoolHandle
from got_data.shards.dataset_card import write_dataset_card
from got_data.shards.manifest import write_manifest
from got_data.shards.wids_index import write_wids_index
from got_data.spec import PipelineSpec

POLL_S = 0.5  # how often the driver asks the annotators how far they are
KILL_WAIT_S = 60.0  # how long a stopping run waits for its killed annotators to be gone


def parse_annotators(value: int | str) -> int | str:
    """The `--annotators` setting: `auto` (one per node) or a whole number >= 1."""
    return parse_auto_or_count(value, "--annotators")


def alive_nodes() -> list[str]:
    """Node ids of the Ray cluster's live nodes, in a stable order."""
    return sorted(node["NodeID"] for node in ray.nodes() if node.get("Alive"))


def annotator_count(setting: int | str) -> int:
    """How many annotators a setting comes to: `auto` is one per live node of the Ray cluster."""
    setting = parse_annotators(setting)
    return (len(alive_nodes()) or 1) if setting == AUTO else int(setting)


def shareable_pools(pools: dict[str, Any]) -> dict[str, Any]:
    """What an annotator gets for each role: a `PoolHandle` for an engine pool (one per pool, so a
    pool serving two roles stays one), or the pool itself when it answers in-process (the world
    oracle, a replay), which then travels as a copy."""
    handles: dict[int, Any] = {}
    for pool in pools.values():
        if id(pool) not in handles:
            handles[id(pool)] = pool.handle() if hasattr(pool, "handle") else pool
    return {role: handles[id(pool)] for role, pool in pools.items()}


def open_pools(shared: dict[str, Any]) -> dict[str, Any]:
    """The annotator's side of `shareable_pools`: each handle opened once (attached pools)."""
    opened: dict[int, Any] = {}
    for item in shared.values():
        if id(item) not in opened:
            opened[id(item)] = item.open() if isinstance(item, PoolHandle) else item
    return {role: opened[id(item)] for role, item in shared.items()}


@dataclass
class PartitionTask:
    """Everything an annotator needs, sent once: picklable (no console, pools as handles)."""

    spec: PipelineSpec
    source: Any
    pools: dict[str, Any]
    partition: Partition
    out_dir: Path | str
    limit: int | None
    samples_per_shard: int
    min_shards: int
    shard_name: str
    max_images_in_flight: int | str
    max_input_pixels: int
    retry_rejects: tuple[str, ...]
    strip_metadata: bool

    def options(self) -> RunOptions:
        return RunOptions(out_dir=self.out_dir, limit=self.limit, samples_per_shard=self.samples_per_shard,
                          min_shards=self.min_shards, shard_name=self.shard_name,
                          max_images_in_flight=self.max_images_in_flight, max_input_pixels=self.max_input_pixels,
                          retry_rejects=self.retry_rejects, strip_metadata=self.strip_metadata,
                          show_progress=False, console=Console(quiet=True))


class Annotator:
    """One partition's run in its own process (a Ray actor: `ray.remote(Annotator)`)."""

    def __init__(self) -> None:
        self.run_: PipelineRun | None = None
        self.pools: dict[str, Any] = {}
        self.engines: dict[str, Any] = {}  # the owner's engines as last sent (`refresh_pools`)
        self.lock = threading.Lock()  # run() and refresh_pools() come on two threads of the actor

    def refresh_pools(self, shared: dict[str, Any]) -> None:
        """The owners' engines now (a replacement for one that died, one added): attached pools use them."""
        with self.lock:
            self.engines.update({role: item for role, item in shared.items() if isinstance(item, PoolHandle)})
            for role, handle in self.engines.items():
                if role in self.pools:
                    self.pools[role].refresh(handle)

    def run(self, task: PartitionTask) -> dict[str, Any]:
        """Annotate the partition; its figures: work (`RunStats`), CPU seconds, node and pid."""
        import os

        cpu0, wall0 = process_cpu_seconds(), time.perf_counter()
        with self.lock:
            pools = self.pools = open_pools(task.pools)
            for role, handle in self.engines.items():  # a refresh that came before the pools opened
                pools[role].refresh(handle)
        settle_heap()
        try:
            self.run_ = PipelineRun(task.spec, task.source, pools, task.options(), partition=task.partition)
            self.run_.run()
        finally:
            with self.lock:  # no refresh reaches a pool being shut down
                self.pools = {}
                for pool in {id(p): p for p in pools.values()}.values():
                    if getattr(pool, "attached", False):
                        pool.shutdown()
        shards = task.partition.shards
        cpu = process_cpu_seconds()
        first = self.run_.first_record_cpu_s
        return {"partition": task.partition.label, "input_shards": None if shards is None else len(shards),
                "node_id": ray.get_runtime_context().get_node_id(),
                "pid": os.getpid(), "cpu_s": cpu - cpu0,
                # CPU until its first record was written (the process warming up, its run opening): what the
                # rest, over the records after the first, leaves is the cost per record at scale
                "start_cpu_s": (cpu if first is None else first) - cpu0, "wall_s": time.perf_counter() - wall0,
                "stats": self.run_.stats, "work": self.run_.stats.as_dict()}

    def progress(self) -> LiveCounts:
        """Its counts so far (inputs seen, records, rejects, inputs past each pool's stages)."""
        return self.run_.stats.live() if self.run_ is not None else LiveCounts()


@dataclass
class AnnotatorsRun:
    """The driver of a run split over `count` annotators."""

    spec: PipelineSpec
    source: Any
    pools: dict[str, Any]
    options: RunOptions
    count: int
    annotators: list[Any] = field(default_factory=list)
    engines: dict[str, PoolHandle] = field(default_factory=dict)  # the owners' engines as last sent

    def _tasks(self) -> list[PartitionTask]:
        o = self.options
        shared = shareable_pools(self.pools)
        self.engines = {role: handle for role, handle in shared.items() if isinstance(handle, PoolHandle)}
        return [PartitionTask(self.spec, self.source, shared, partition, o.out_dir, o.limit,
                              o.samples_per_shard, o.min_shards, o.shard_name, o.max_images_in_flight,
                              o.max_input_pixels, tuple(o.retry_rejects), o.strip_metadata)
                for partition in split(self.source, self.count, o.limit)]

    def _follow_engines(self) -> None:
        """When an owning pool replaced, added or gave up an engine, send the annotators its new handle."""
        now = {role: handle for role, handle in shareable_pools(self.pools).items() if isinstance(handle, PoolHandle)}
        if {role: h.version for role, h in now.items()} != {role: h.version for role, h in self.engines.items()}:
            self.engines = now
            ray.get([actor.refresh_pools.remote(now) for actor in self.annotators])

    def _start(self) -> list[Any]:
        """One actor per partition, round robin over the live nodes (soft: a full node does not block)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = alive_nodes()
        remote: Any = ray.remote(Annotator)
        for i in range(self.count):
            strategy = NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True) if nodes else "DEFAULT"
            # No CPU reserved: an annotator waits on decode tasks and pools most of the time.
            self.annotators.append(remote.options(num_cpus=0, max_concurrency=3,
                                                  scheduling_strategy=strategy).remote())
        return [actor.run.remote(task) for actor, task in zip(self.annotators, self._tasks())]

    def _wait(self, refs: list[Any], progress: Progress | None, task_id: Any, clock: RunStats) -> list[dict[str, Any]]:
        """The annotators' results; the first failure stops the others and is raised. The progress line
        shows their counts summed, as rates over the run's time so far (`clock`)."""
        results: dict[Any, dict[str, Any]] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in ready:
                results[ref] = ray.get(ref)  # raises the annotator's error
            self._follow_engines()
            if progress is not None:
                live = sum(ray.get([actor.progress.remote() for actor in self.annotators]), LiveCounts())
                progress.update(task_id, completed=live.inputs, **live_fields(live, clock.elapsed()))
        return [results[ref] for ref in refs]

    def run(self) -> dict[str, Any]:
        """Run every partition to its end; returns the stats document also written to stats.json."""
        opts = self.options
        output = OutputFolder(opts.out_dir)  # a bucket's stale uploads are aborted here, before any annotator
        merged = RunStats([s.name for s in self.spec.stages],  # the annotators' work, on the driver's clock
                          role_stages={s.role: s.name for s in self.spec.stages if s.role is not None})
        progress, task_id = None, None
        try:
            output.fetch_state()
            output.state_dir.mkdir(parents=True, exist_ok=True)
            stats_log = StatsLog(output.state_dir)
            stats_log.begin({**attempt_info(self.spec, pool_models(self.pools), opts), "annotators": self.count})
            if opts.show_progress:
                total = self.source.count() if hasattr(self.source, "count") else None
                if total is not None and opts.limit is not None:
                    total = min(total, opts.limit)
                progress, task_id = start_progress(f"{self.spec.name} ({self.count} annotators)", opts.console, total)
            refs = self._start()
            try:
                results = self._wait(refs, progress, task_id, merged)
            except BaseException:
                stats_log.end(merged.as_dict(), "failed")
                output.publish_state(LOG_FILE)
                raise
            finally:
                if progress is not None:
                    progress.stop()
                for actor in self.annotators:
                    ray.kill(actor, no_restart=True)
                # a kill is asynchronous: wait until every annotator is gone, so none still commits a
                # shard after the run has ended (or failed)
                ray.wait(refs, num_returns=len(refs), timeout=KILL_WAIT_S)
            for result in results:
                merged.merge(result["stats"])
            return self._finish(output, stats_log, merged, results)
        finally:
            output.close()

    def _finish(self, output: OutputFolder, stats_log: StatsLog, merged: RunStats,
                results: list[dict[str, Any]]) -> dict[str, Any]:
        """What spans the output: manifest, wids index, card, merged rejects, stats.json."""
        opts = self.options
        journals = OutputJournals(output.location, opts.shard_name, frozenset(opts.retry_rejects))
        manifest = write_manifest(output.location, opts.shard_name)
        rejects = journals.merged_rejects()
        write_rejects_parquet(output.staging / "rejects.parquet", rejects)
        output.publish("rejects.parquet")
        write_wids_index(output.location, opts.shard_name)
        write_dataset_card(output.location, opts.shard_name)
        work = merged.as_dict()
        stats_log.end(work, "finished")
        totals = {"samples": journals.sample_count(), "rejects": len(rejects), "shards": journals.shard_count(),
                  "manifest": manifest.name, "finished_at": datetime.now(timezone.utc).isoformat()}
        reasons = Counter(f"{row.stage}/{row.reason}" for row in rejects)
        document = stats_log.document(work, totals, [], reasons, complete=True, other_shards=journals.dataset)
        document["annotators"] = [
            {"partition": r["partition"], "input_shards": r["input_shards"], "node_id": r["node_id"], "pid": r["pid"],
             "cpu_s": round(r["cpu_s"], 3), "start_cpu_s": round(r["start_cpu_s"], 3), "wall_s": round(r["wall_s"], 3),
             "work": r["work"]} for r in results]
        write_stats(output.staging, document)
        output.publish(STATS_FILE)
        output.publish_state(LOG_FILE)
        return document
