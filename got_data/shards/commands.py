"""`got-data validate`: the command-line face of `validate_paths` (the lead mounts it on the main app)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from got_data.errors import InputError, ShardError
from got_data.shards.tar_policy import DEFAULT_POLICY, parse_caps
from got_data.shards.validate import DEFAULT_MAX_IMAGE_PIXELS, ValidationReport, validate_paths


def render_report(report: ValidationReport, console: Console, show: int = 5) -> None:
    """Print the summary table and the first `show` offending keys with their reasons."""
    summary = Table(title="Shard validation", show_header=True)
    summary.add_column("shards", justify="right")
    summary.add_column("samples", justify="right")
    summary.add_column("valid", justify="right")
    summary.add_column("invalid", justify="right")
    summary.add_row(str(report.shards), str(report.samples), str(report.valid), str(report.invalid))
    console.print(summary)
    if report.ok:
        console.print("[green]all shards valid[/green]")
        return
    kinds = Table(title="Problems by kind")
    kinds.add_column("kind")
    kinds.add_column("count", justify="right")
    for kind, count in sorted(report.issue_counts.items()):
        kinds.add_row(kind, str(count))
    console.print(kinds)
    first = Table(title=f"First {min(show, len(report.issues))} problem(s)")
    for column in ("kind", "shard", "key", "reason"):
        first.add_column(column, overflow="fold")
    for issue in report.issues[:show]:
        first.add_row(issue.kind, issue.path, issue.key or "-", issue.reason)
    console.print(first)


def validate(
    paths: Annotated[list[Path], typer.Argument(help="shard tars, folders of shards, or globs")],
    show: Annotated[int, typer.Option(help="how many offending keys to list")] = 5,
    max_image_pixels: Annotated[int, typer.Option(help="images above this many pixels count as undecodable")] = DEFAULT_MAX_IMAGE_PIXELS,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the full report as JSON here")] = None,
    max_member_bytes: Annotated[Optional[list[str]], typer.Option(
        metavar="EXT=SIZE", help="cap on tar members by extension, e.g. png=20MB, *=8M for all others (repeatable); "
        "larger members are reported, never read")] = None,
) -> None:
    """Check every sample of the given shards; exit 1 if anything is invalid, 0 otherwise."""
    console = Console()
    try:
        policy = DEFAULT_POLICY.with_caps(parse_caps(max_member_bytes or []))
        report = validate_paths(paths, max_image_pixels=max_image_pixels, keep_per_kind=max(show, 20),
                                member_policy=policy)
    except (ShardError, InputError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    render_report(report, console, show)
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(0 if report.ok else 1)
