"""Annotate world sets with real model pools and score them: what the demo, the fidelity tests and
`bench/fidelity.py` share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from got_data.eval.fidelity import score_run, write_scores
from got_data.world.sets import WORLD_SPECS


def annotate_and_score(kind: str, input_path: Path, truth_dir: Path, out_dir: Path, pools: dict[str, Any],
                       console: Console, samples_per_shard: int = 1000, show_progress: bool = True,
                       spec: Any = None) -> dict[str, Any]:
    """Run the world pipeline of `kind` (or `spec`) on one world set with the given pools; writes and
    returns its fidelity scores (`out_dir/fidelity.json`)."""
    from got_data.annotate.launch import ModelChoice, annotate
    from got_data.annotate.runner import RunOptions
    from got_data.spec import load_spec
    from got_data.world.oracle import open_world_input

    options = RunOptions(out_dir=out_dir, samples_per_shard=samples_per_shard, console=console,
                         show_progress=show_progress)
    annotate(spec or load_spec(WORLD_SPECS[kind]), open_world_input(kind, input_path), options, ModelChoice(), pools=pools)
    scores = score_run(out_dir, truth_dir)
    write_scores(scores, out_dir / "fidelity.json")
    return scores


def start_world_pools(vlm: str | Path, llm: str | Path, console: Console) -> dict[str, Any]:
    """One pool per role with the world specs' model settings (the same for all three pipelines)."""
    from got_data.annotate.launch import ModelChoice, init_ray, start_pools
    from got_data.spec import load_spec

    init_ray(None, 2)
    return start_pools(load_spec(WORLD_SPECS["t2i"]), ModelChoice(vlm=str(vlm), llm=str(llm)), console)
