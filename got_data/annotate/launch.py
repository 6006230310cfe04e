"""Everything `got-data annotate` does before and after the run: Ray, the pools, the summary."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.table import Table

from got_data import uri
from got_data.annotate.annotators import AnnotatorsRun, annotator_count
from got_data.annotate.out_marker import RunIdentity, claim_output_dir
from got_data.annotate.projection import PLAN_FILE, plan_comparison, read_plan
from got_data.annotate.runner import PipelineRun, RunOptions
from got_data.annotate.stats_log import STATS_FILE
from got_data.engines.config import PoolConfig
from got_data.local_ray import start_local_ray
from got_data.report import write_report
from got_data.spec import PipelineSpec, Role

TINY_MODELS = "got-data tiny random-weight models"  # what a role without --vlm/--llm gets


@dataclass
class ModelChoice:
    vlm: str | None = None
    llm: str | None = None


def init_ray(address: str | None, roles: int) -> None:
    """Join a cluster when given an address (or RAY_ADDRESS names one, as in a Ray job); else start a
    local Ray, bound to loopback, sized so the engines (one logical CPU each) leave room for decode
    tasks. Never the cluster a stale /tmp/ray/ray_current_cluster names (`start_local_ray`)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    cpus = max(os.cpu_count() or 1, roles + 2)
    start_local_ray(cpus, int(os.environ.get("GOT_DATA_OBJECT_STORE_BYTES", 500 * 1024**2)))


def pool_config(spec: PipelineSpec, role: Role, model: str) -> PoolConfig:
    """The pool configuration of one role of the spec, for `model`."""
    role_spec = spec.models.get(role)
    return PoolConfig(role=role, model=model, **(role_spec.model_dump() if role_spec else {}))


def check_models(spec: PipelineSpec, models: ModelChoice) -> None:
    """Each model named on the command line (--vlm, --llm) for a role of the spec is readable and of a
    family that role can use; raises PoolConfigError. Run before the output folder is claimed and Ray
    starts, so a typo costs nothing and never marks the folder with a model that did not run."""
    given: dict[Role, str | None] = {"vlm": models.vlm, "llm": models.llm}
    for role, model in given.items():
        if model is not None and role in spec.roles():
            pool_config(spec, role, model).resolved()


def pool_configs(spec: PipelineSpec, chosen: dict[str, str]) -> dict[str, PoolConfig]:
    """The pool configuration each role of the spec calls, for the chosen model paths.

    When the VLM and LLM roles name the same model, both roles get one configuration (the same
    object): one pool serves both, so each GPU holds one engine instead of two and no engine idles
    while the other role's stages are busy. It has the two roles' engines together, the longer
    context of the two, and the VLM's image bounds and in-flight bound."""
    configs: dict[str, PoolConfig] = {role: pool_config(spec, role, chosen[role]) for role in spec.roles()}
    vlm, llm = configs.get("vlm"), configs.get("llm")
    if vlm is not None and llm is not None and vlm.model == llm.model:
        shared = replace(vlm, num_actors=vlm.num_actors + llm.num_actors,
                         max_model_len=max(vlm.max_model_len, llm.max_model_len))
        configs = {"vlm": shared, "llm": shared}
    return configs


def start_pools(spec: PipelineSpec, models: ModelChoice, console: Console) -> dict[str, Any]:
    """One pool per role the spec uses (one for both when they name the same model: `pool_configs`);
    roles without a model option get the tiny local models. Shut each role's pool down once."""
    from got_data.engines.pool import ModelPool
    from got_data.engines.tiny_models import ensure_tiny_models

    chosen = {"vlm": models.vlm, "llm": models.llm}
    if any(chosen[role] is None for role in spec.roles()):
        tiny = ensure_tiny_models()
        console.print(
            "[yellow]using the tiny random-weight models: their text is meaningless; "
            "pass --vlm/--llm with real checkpoints for real annotations[/yellow]"
        )
        chosen = {"vlm": chosen["vlm"] or str(tiny.vlm), "llm": chosen["llm"] or str(tiny.llm)}
    pools: dict[str, Any] = {}
    started: dict[int, Any] = {}
    for role, config in pool_configs(spec, {role: str(model) for role, model in chosen.items()}).items():
        if id(config) in started:
            pools[role] = started[id(config)]
            pools[role].add_user()  # each role's shutdown releases one hold
            console.print(f"the {role} role shares the {config.role} pool: {config.model}")
            continue
        console.print(f"starting the {role} pool: {config.model}")
        pools[role] = started[id(config)] = ModelPool.start(config)
    return pools


def run_pipeline(spec: PipelineSpec, source: Any, pools: dict[str, Any], options: RunOptions) -> dict[str, Any]:
    """Run in the driver (one annotator: the single-process path, as before annotators existed), or
    split over `options.annotators` annotator actors (`auto`: one per node of the Ray cluster)."""
    count = annotator_count(options.annotators)
    if count == 1:
        return PipelineRun(spec, source, pools, options).run()
    options.console.print(f"{count} annotators, one partition each")
    return AnnotatorsRun(spec, source, pools, options, count).run()


def summary_table(stats: dict[str, Any]) -> Table:
    run, totals = stats["run"], stats["totals"]
    table = Table(title="annotation summary", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in [
        ("inputs seen", run["inputs_seen"]),
        ("already done (resumed)", run["skipped_already_done"]),
        ("records written", run["records"]),
        ("rejected", run["rejects"]),
        ("records/s", run["records_per_s"]),
        ("objects per record", run["objects_per_record"]),
        ("boxes per record", run["boxes_per_record"]),
        ("samples in output", totals["samples"]),
        ("rejects in output", totals["rejects"]),
        ("shards", totals["shards"]),
    ]:
        table.add_row(label, str(value))
    for reason, count in run["rejects_by_reason"].items():
        table.add_row(f"  reject {reason}", str(count))
    for stage, usage in run["tokens_per_stage"].items():
        table.add_row(f"  tokens {stage}", f"{usage['prompt_tokens']} in / {usage['output_tokens']} out")
    return table


def _plan_for(out: Path | str, plan_file: Path | str | None) -> dict[str, Any] | None:
    """The plan to compare the run with: `plan_file` (must be readable), else OUT/plan.json if present."""
    if plan_file is not None:
        return read_plan(plan_file)
    in_out = uri.location(out).join(PLAN_FILE)
    return read_plan(in_out) if uri.is_file(in_out) else None


def annotate(
    spec: PipelineSpec,
    source: Any,
    options: RunOptions,
    models: ModelChoice,
    ray_address: str | None = None,
    pools: dict[str, Any] | None = None,
    force: bool = False,
    plan_file: Path | str | None = None,
) -> dict[str, Any]:
    """Run a pipeline end to end; pools passed in are used (and left running), else started here.

    The models named are checked and the output folder is claimed for this job first (`out_marker`),
    before Ray or a pool starts. A plan
    (`plan_file`, or OUT/plan.json) gets the run's figures put beside its own in stats.json."""
    plan = _plan_for(options.out_dir, plan_file)
    if pools is not None:
        infos = {role: pool.model_info() for role, pool in pools.items()}
        names = {role: f"{info.get('name')}@{info.get('revision')}" for role, info in infos.items()}
    else:
        check_models(spec, models)
        names = {"vlm": models.vlm or TINY_MODELS, "llm": models.llm or TINY_MODELS}
    identity = RunIdentity.of(spec, source, names, strip_metadata=options.strip_metadata)
    claim_output_dir(options.out_dir, identity, force=force)
    init_ray(ray_address, len(spec.roles()))
    own = pools is None
    pools = pools if pools is not None else start_pools(spec, models, options.console)
    try:
        stats = run_pipeline(spec, source, pools, options)
    finally:
        if own:
            for pool in pools.values():
                pool.shutdown()
    if plan is not None:
        stats["plan"] = plan_comparison(plan, stats)
        text = json.dumps(stats, indent=2, sort_keys=True) + "\n"
        uri.write_text(uri.location(options.out_dir).join(STATS_FILE), text)
    options.console.print(summary_table(stats))
    out = uri.location(options.out_dir)
    report = write_report(out)
    shown = out.uri if out.remote else Path(out.path).resolve()
    options.console.print(f"output: {shown} (look at it: {report.path.name})")
    return stats
