"""`got-data plan`: the cost of a run before it starts (a measured sample, projected; `annotate/plan.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

console = Console()


def _open_for_spec(spec: Any, input: str, allow_outside: list[str]) -> Any:
    """The input opened the way `annotate` opens it for the spec's record kind (default columns)."""
    from got_data.ingest import INPUT_KINDS, open_source

    return open_source(input, INPUT_KINDS[spec.record_kind](), allow_outside=allow_outside)


def plan(
    input: Annotated[str, typer.Argument(help="the input the run will annotate (as `annotate` takes it)")],
    config: Annotated[str, typer.Option(help="pipeline spec (a path or a bundled name)")] = "t2i.yaml",
    vlm: Annotated[Optional[str], typer.Option(help="the run's VLM checkpoint")] = None,
    llm: Annotated[Optional[str], typer.Option(help="the run's LLM checkpoint")] = None,
    sample: Annotated[int, typer.Option(help="inputs to annotate for the measurement (seeded random choice)")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the sample's choice")] = 0,
    gpu_type: Annotated[str, typer.Option(help="device to price the run on: a device of the throughput table")] = "H100",
    gpus: Annotated[int, typer.Option(min=1, help="devices the run will have")] = 8,
    throughput: Annotated[Optional[Path], typer.Option(
        help="YAML/JSON throughput table whose devices replace the shipped estimates (docs/CONFIG.md)")] = None,
    out: Annotated[str, typer.Option(
        help="folder or bucket URI for plan.json: the run's --out, so its stats.json compares")] = ".",
    inputs: Annotated[Optional[int], typer.Option(help="the whole input's size, for an input that cannot count itself")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    allow_paths_outside: Annotated[Optional[list[str]], typer.Option(
        "--allow-paths-outside", metavar="ROOT",
        help="also read files under ROOT, a folder or a bucket prefix (repeatable)")] = None,
) -> None:
    """Annotate a random sample of INPUT, measure its requests, tokens, images and cache hits per stage, and
    project the whole run: tokens, device-hours and wall time on --gpus of --gpu-type, and the VLM:LLM split.
    Prints the projection and writes OUT/plan.json."""
    from got_data.annotate.launch import ModelChoice
    from got_data.annotate.plan import PlanRequest, run_plan
    from got_data.spec import load_spec

    spec = load_spec(config)
    source = _open_for_spec(spec, input, allow_paths_outside or [])
    request = PlanRequest(sample_size=sample, seed=seed, device=gpu_type, devices=gpus, throughput=throughput,
                          out_dir=out, inputs=inputs)
    run_plan(spec, source, ModelChoice(vlm=vlm, llm=llm), request, console, ray_address=ray_address)
