"""`got-data validate`: the command-line face of `validate_paths` (the lead mounts it on the main app).

Human tables go to stdout, or to stderr when `--json -` puts the JSON report on stdout, so a CI step
can pipe the JSON and still show people the tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from got_data.atomic import atomic_write_text
from got_data.cli.output import EXIT_INVALID_DATA, EXIT_OK, fail
from got_data.errors import InputError, ShardError
from got_data.records import SCHEMA_VERSION
from got_data.shards.tar_policy import DEFAULT_POLICY, parse_caps
from got_data.shards.validate import DEFAULT_MAX_IMAGE_PIXELS, ValidationReport, validate_paths
from got_data.uri import StorageError

STDOUT = "-"


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


def report_document(report: ValidationReport) -> dict[str, Any]:
    """The JSON report: `ok` and the schema version the shards were checked against, then the counts."""
    return {"ok": report.ok, "schema_version": SCHEMA_VERSION, **report.to_dict()}


def _check_json_target(json_out: str | None) -> None:
    """Refuse a --json target that cannot be written, before any shard is read."""
    if json_out is None or json_out == STDOUT:
        return
    target = Path(json_out)
    if target.is_dir():
        raise InputError(f"--json {json_out} is a folder; give a file name, or '-' for stdout")
    if not target.parent.is_dir():
        raise InputError(f"--json {json_out}: folder {target.parent} does not exist")


def validate(
    paths: Annotated[list[str], typer.Argument(help="shard tars, folders of shards, globs, or bucket URIs "
                                                    "(s3://bucket/prefix or a shard object)")],
    show: Annotated[int, typer.Option(help="how many offending keys to list")] = 5,
    max_image_pixels: Annotated[int, typer.Option(help="images above this many pixels count as undecodable")] = DEFAULT_MAX_IMAGE_PIXELS,
    json_out: Annotated[str | None, typer.Option(
        "--json", metavar="FILE|-",
        help="also write the full report as JSON (with 'ok' and 'schema_version') to FILE; '-' is stdout, "
             "and the tables then go to stderr")] = None,
    max_member_bytes: Annotated[Optional[list[str]], typer.Option(
        metavar="EXT=SIZE", help="cap on tar members by extension, e.g. png=20MB, *=8M for all others (repeatable); "
        "larger members are reported, never read")] = None,
) -> None:
    """Check every sample of the given shards; exit 1 if anything is invalid, 0 otherwise, 2 on a usage or
    input error (one line on stderr)."""
    try:
        _check_json_target(json_out)
        policy = DEFAULT_POLICY.with_caps(parse_caps(max_member_bytes or []))
        report = validate_paths(paths, max_image_pixels=max_image_pixels, keep_per_kind=max(show, 20),
                                member_policy=policy)
    except (InputError, ShardError, StorageError) as exc:
        fail(exc)
    document = json.dumps(report_document(report), indent=2) + "\n"
    render_report(report, Console(stderr=json_out == STDOUT), show)
    if json_out == STDOUT:
        sys.stdout.write(document)
        sys.stdout.flush()
    elif json_out is not None:
        atomic_write_text(Path(json_out), document)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_INVALID_DATA)
