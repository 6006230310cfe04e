"""`got-data plan`: annotate a seeded random sample of the input through the real runner and pools,
measure what each input costs per stage, and project the whole run (`projection.py`) before paying for it."""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.table import Table

from got_data import uri
from got_data.annotate.in_flight import AUTO
from got_data.annotate.launch import ModelChoice, annotate, init_ray, start_pools
from got_data.annotate.projection import (
    MEASURED_DEVICE,
    PLAN_FILE,
    PlanError,
    load_throughput_table,
    measured_rows,
    model_params_b,
    pick_row,
    project,
)
from got_data.annotate.runner import RunOptions
from got_data.engines.config import read_model_config
from got_data.ingest.items import Source
from got_data.spec import PipelineSpec


class SampledSource(Source[Any]):
    """A seeded random choice of `size` inputs of `source`, in input order; where the input lives (for
    the run marker) and its dataset name are the source's own."""

    def __init__(self, source: Source[Any], size: int, seed: int, total: int) -> None:
        self._source = source
        self.dataset = source.dataset
        self.total = total
        self.chosen = frozenset(random.Random(seed).sample(range(total), min(size, total)))

    @property
    def location(self) -> str:
        return self._source.location

    def count(self) -> int:
        return len(self.chosen)

    def __iter__(self) -> Iterator[Any]:
        last = max(self.chosen, default=-1)
        for index, item in enumerate(self._source):
            if index > last:
                return
            if index in self.chosen:
                yield item


class MeteredPool:
    """Forwards to a pool and counts what the runner's stats do not: images per stage, and the seconds in
    which at least one request of this role was in flight (the engines' busy time)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.images: Counter = Counter()
        self.busy_s = 0.0
        self._in_flight = 0
        self._busy_since = 0.0

    async def generate(self, request: Any) -> Any:
        self.images[request.context.get("stage", "?")] += len(request.images)
        if self._in_flight == 0:
            self._busy_since = time.monotonic()
        self._in_flight += 1
        try:
            return await self.pool.generate(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.busy_s += time.monotonic() - self._busy_since

    def model_info(self) -> dict:
        return self.pool.model_info()


def _cache_counters(pool: Any) -> dict[str, float]:
    engine = pool.stats().get("engine", {})
    return {key: float(engine.get(key, 0)) for key in
            ("prefix_cache_queries", "prefix_cache_hits", "mm_cache_queries", "mm_cache_hits")}


def _rate(after: dict[str, float], before: dict[str, float], name: str) -> float:
    queries = after[f"{name}_queries"] - before[f"{name}_queries"]
    return (after[f"{name}_hits"] - before[f"{name}_hits"]) / queries if queries > 0 else 0.0


def measure_sample(spec: PipelineSpec, sample: SampledSource, pools: dict[str, Any], work_dir: Path,
                   console: Console, max_images_in_flight: int | str = AUTO) -> dict[str, Any]:
    """Annotate the sample into `work_dir` with `pools` and return what it cost: per stage (role, requests,
    prompt and output tokens, images), per role (busy seconds, cache hit rates, model size), records."""
    metered = {role: MeteredPool(pool) for role, pool in pools.items()}
    before = {role: _cache_counters(pool) for role, pool in pools.items()}
    options = RunOptions(out_dir=work_dir, console=console, max_images_in_flight=max_images_in_flight,
                         show_progress=False)
    stats = annotate(spec, sample, options, ModelChoice(), pools=metered)
    after = {role: _cache_counters(pool) for role, pool in pools.items()}
    roles = {s.name: s.role for s in spec.stages if s.role}
    stages = {}
    for name, role in roles.items():
        usage = stats["run"]["tokens_per_stage"].get(name, {})
        stages[name] = {"role": role, "requests": usage.get("requests", 0), "images": metered[role].images[name],
                        "prompt_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("output_tokens", 0)}
    return {
        "inputs": stats["run"]["inputs_seen"],
        "records": stats["run"]["records"],
        "rejects": stats["run"]["rejects"],
        "rejects_by_reason": stats["run"]["rejects_by_reason"],
        "wall_s": stats["run"]["elapsed_s"],
        "stages": stages,
        "roles": {role: {"model": pool.model_info()["name"], "busy_s": metered[role].busy_s,
                         "params_b": model_params_b(read_model_config(pool.config.model)),
                         "prefix_cache_hit_rate": _rate(after[role], before[role], "prefix_cache"),
                         "mm_cache_hit_rate": _rate(after[role], before[role], "mm_cache")}
                  for role, pool in pools.items()},
    }


@dataclass
class PlanRequest:
    """What `got-data plan` was asked: the sample, the device to price, where plan.json goes."""

    sample_size: int = 200
    seed: int = 0
    device: str = "H100"
    devices: int = 8
    throughput: Path | None = None
    out_dir: str = "."  # a local folder or a bucket URI
    inputs: int | None = None  # the whole input's size, when the source cannot count itself
    max_images_in_flight: int | str = AUTO


def plan_location(request: PlanRequest) -> uri.Location:
    """Where plan.json goes: in the folder (or bucket prefix) the run will write to."""
    return uri.location(request.out_dir).join(PLAN_FILE)


def make_plan(spec: PipelineSpec, source: Source[Any], request: PlanRequest, pools: dict[str, Any],
              console: Console) -> dict[str, Any]:
    """Measure a sample with `pools` and project the whole input; writes OUT/plan.json and returns it."""
    table = load_throughput_table(request.throughput)  # a bad table fails before any work
    total = request.inputs if request.inputs is not None else source.count()
    if total is None:
        raise PlanError("this input cannot count its inputs (a shard set without an index?): pass --inputs N")
    if request.sample_size < 1:
        raise PlanError(f"--sample must be at least 1, got {request.sample_size}")
    sample = SampledSource(source, request.sample_size, request.seed, total)
    with tempfile.TemporaryDirectory(prefix="got-plan-") as work:
        measured = measure_sample(spec, sample, pools, Path(work) / "sample", console, request.max_images_in_flight)
    measured["seed"] = request.seed
    here = measured_rows(measured)
    device_rows = {role: pick_row(table, request.device, m["params_b"]) for role, m in measured["roles"].items()}
    plan = {
        "version": 1,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "pipeline": spec.name,
        "inputs": total,
        "sample": measured,
        "projections": {
            MEASURED_DEVICE: project(measured, total, here, len(here)),
            request.device: project(measured, total, device_rows, request.devices),
        },
    }
    uri.write_text(plan_location(request), json.dumps(plan, indent=2, sort_keys=True) + "\n")
    return plan


def run_plan(spec: PipelineSpec, source: Any, models: ModelChoice, request: PlanRequest, console: Console,
             ray_address: str | None = None) -> dict[str, Any]:
    """`got-data plan`: start Ray and the pools, make the plan, stop the pools, print the projection."""
    pick_row(load_throughput_table(request.throughput), request.device, 1.0)  # fail before Ray starts
    init_ray(ray_address, len(spec.roles()))
    pools = start_pools(spec, models, console)
    try:
        plan = make_plan(spec, source, request, pools, console)
    finally:
        for pool in pools.values():
            pool.shutdown()
    console.print(projection_table(plan))
    console.print(f"plan: {plan_location(request)}")
    return plan


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 360 else f"{seconds:,.0f} s"


def projection_table(plan: dict[str, Any]) -> Table:
    """The plan as one table: per device and role, the run's requests, tokens, device-hours, devices, wall time."""
    sample = plan["sample"]
    table = Table(title=f"plan: {plan['inputs']:,} inputs, from a sample of {sample['inputs']} "
                        f"({sample['records']} records)")
    for column in ("device", "role", "requests", "prompt tok", "prefill tok", "output tok", "images",
                   "device-h", "devices", "wall"):
        table.add_column(column, justify="left" if column in ("device", "role") else "right")
    for device, projection in plan["projections"].items():
        for role, cost in projection["roles"].items():
            mark = " (estimate)" if cost["throughput"]["estimate"] else ""
            table.add_row(f"{device}{mark}", role, f"{cost['requests']:,.0f}", f"{cost['prompt_tokens']:,.0f}",
                          f"{cost['prefill_tokens']:,.0f}", f"{cost['output_tokens']:,.0f}", f"{cost['images']:,.0f}",
                          f"{cost['device_hours']:,.2f}", str(cost["devices"] or "shared"), "")
        share = projection["vlm_share"]
        ratio = f"vlm share {share:.0%}" if share is not None else ""
        table.add_row(device, "total", "", "", "", "", "", f"{projection['totals']['device_hours']:,.2f}",
                      f"{projection['devices']} {ratio}", _hours(projection["wall_s"]))
    return table
