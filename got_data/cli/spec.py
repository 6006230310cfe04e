"""`got-data spec check FILE` and `got-data spec docs`: a pipeline spec checked without Ray or a model,
and the generated stage-option tables of docs/CONFIG.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from got_data.errors import SpecError

app = typer.Typer(help="Check pipeline specs; generate their option docs.", no_args_is_help=True)


@app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="pipeline spec files (or bundled names like t2i-tiny.yaml)")],
    stages_module: Annotated[Optional[list[str]], typer.Option(
        help="module defining stages of your own (repeatable; GOT_DATA_STAGE_MODULES works too)")] = None,
) -> None:
    """Check each spec: stage names, roles, options, prompts and the reads/writes chain. Prints one
    line per spec (errors on stderr, so a script can keep the ok lines); exits 1 if any is invalid."""
    from got_data.spec import load_spec

    failed = False
    for path in files:
        try:
            spec = load_spec(path, stage_modules=stages_module or ())
        except SpecError as exc:
            failed = True
            typer.echo(f"error: {exc}", err=True)
            continue
        typer.echo(f"ok: {spec.source} ({spec.record_kind}: {' -> '.join(s.name for s in spec.stages)})")
    if failed:
        raise typer.Exit(1)


@app.command("docs")
def docs(write: Annotated[bool, typer.Option(help="update docs/CONFIG.md in place")] = False) -> None:
    """Print the stage-option tables generated from the stages' Options models (or write them)."""
    from got_data.spec_docs import main

    main(["--write"] if write else [])
