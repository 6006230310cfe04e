"""The live progress line of a run: the same line whether the driver does the work or N annotators do.

Inputs done, records, rejects, records/s and each model pool's records/s (`live_fields`), so
a split run shows on its driver what a single-process run shows, summed over the annotators.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from got_data.annotate.stats import LiveCounts


def pool_rates_text(rates: dict[str, float]) -> str:
    """The progress line's live rate per model pool: ` (vlm 3.10/s, llm 3.05/s)`, empty without pools."""
    return f" ({', '.join(f'{role} {rate:.2f}/s' for role, rate in rates.items())})" if rates else ""


def start_progress(title: str, console: Console, total: int | None) -> tuple[Progress, TaskID]:
    """A started progress bar with the run's columns; update it with `live_fields`."""
    progress = Progress(
        TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[records]} records, {task.fields[rejects]} rejects, {task.fields[rate]:.2f} rec/s"
                   "{task.fields[pools]}"),
        TimeElapsedColumn(), console=console, transient=False,
    )
    task_id = progress.add_task("annotate", total=total, records=0, rejects=0, rate=0.0, pools="")
    progress.start()
    return progress, task_id


def live_fields(live: LiveCounts, elapsed: float) -> dict[str, Any]:
    """What `start_progress`'s columns show for these counts after `elapsed` seconds."""
    return {"records": live.records, "rejects": live.rejects, "rate": live.records_per_s(elapsed),
            "pools": pool_rates_text(live.records_per_s_by_role(elapsed))}
