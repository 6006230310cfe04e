"""`got-data world make`, `got-data eval fidelity` and `got-data models train-tiny`: the known-answer world
from the command line (registered in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import TaskID
from rich.table import Table

console = Console()


def make(
    out: Annotated[Path, typer.Argument(help="folder to write the inputs and truth.jsonl into")],
    kind: Annotated[str, typer.Option(help="t2i, edit or multiturn")] = "t2i",
    count: Annotated[int, typer.Option(min=1, help="number of inputs")] = 32,
    seed: Annotated[int, typer.Option(help="same seed, same set")] = 0,
    repeats: Annotated[bool, typer.Option(help="t2i scenes with repeated objects (two or three alike)")] = False,
    combined: Annotated[bool, typer.Option(help="multiturn sequences given as one combined instruction, some "
                                                "intermediate images dropped")] = False,
) -> None:
    """Write a world set: the pipeline input (an image folder or a manifest) and its truth."""
    from got_data.world.sets import write_world_set

    path = write_world_set(out, kind, count, seed=seed, repeats=repeats, combined=combined)
    console.print(f"wrote {count} {kind} inputs; annotate with: got-data annotate {kind} {path} --out OUT "
                  f"--config {kind}-world.yaml --vlm {{world vlm}} --llm {{world llm}}")
    console.print(f"truth: {out / 'truth.jsonl'}; score with: got-data eval fidelity OUT --truth {out}")


def fidelity_table(scores: dict) -> Table:
    table = Table(title=f"fidelity: {scores['kind']} ({scores['records']}/{scores['inputs']} inputs have a record)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in scores.items():
        if key in ("kind", "out_dir", "inputs", "records"):
            continue
        table.add_row(key, "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    return table


def fidelity(
    out_dir: Annotated[Path, typer.Argument(help="output folder of a `got-data annotate` run on a world set")],
    truth: Annotated[Path, typer.Option(help="the world set's folder or its truth.jsonl")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="where to write the scores (default: OUT_DIR/fidelity.json)")] = None,
) -> None:
    """Score GoT records against the world's truth: objects, boxes and words (t2i); regions, edited
    objects and edit types (edit, multiturn). Prints a table and writes fidelity.json."""
    from got_data.eval.fidelity import score_run, write_scores

    scores = score_run(out_dir, truth)
    console.print(fidelity_table(scores))
    path = json_out or out_dir / "fidelity.json"
    write_scores(scores, path)
    console.print(f"wrote {path}")


def train_tiny(
    out: Annotated[Path, typer.Argument(help="folder for the trained checkpoints (OUT/vlm, OUT/llm)")],
    seed: Annotated[int, typer.Option(help="same seed, same checkpoints (on the same machine)")] = 0,
    vlm_steps: Annotated[Optional[int], typer.Option(help="training steps of the vlm (default: the recipe's)")] = None,
    llm_steps: Annotated[Optional[int], typer.Option(help="training steps of the llm (default: the recipe's)")] = None,
    only: Annotated[Optional[str], typer.Option(help="train just this role (vlm or llm); the other checkpoint in OUT stays")] = None,
) -> None:
    """Train the known-answer world's tiny Qwen2-VL (vlm stages) and Qwen2 (llm stages) on CPU from
    oracle-answered world sets. The committed checkpoints came from this command with its defaults."""
    from rich.progress import Progress

    from got_data.world.training import WorldTrainingConfig, train_world_models

    if only not in (None, "vlm", "llm"):
        raise typer.BadParameter(f"--only takes vlm or llm, not {only!r}")
    roles = (only,) if only else ("vlm", "llm")
    config = WorldTrainingConfig(seed=seed)
    if vlm_steps is not None:
        config.vlm.steps = vlm_steps
    if llm_steps is not None:
        config.llm.steps = llm_steps
    with Progress(console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def report(role: str, step: int, total: int, losses: dict[str, float]) -> None:
            if role not in tasks:
                tasks[role] = progress.add_task(f"train {role}", total=total)
            loss = " ".join(f"{k}={v:.2f}" for k, v in sorted(losses.items()))
            progress.update(tasks[role], completed=step, description=f"train {role} [{loss}]")

        result = train_world_models(out, config, roles=roles, progress=report)
    console.print(f"trained in {result['seconds']:.0f} s: {out / 'vlm'}, {out / 'llm'} (report: {out / 'training.json'})")
