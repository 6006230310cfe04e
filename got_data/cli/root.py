"""The `got-data` command. Heavy imports (Ray, vLLM, torch) happen inside the commands that need
them, so `got-data --help` and `got-data validate` start fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

import got_data
from got_data.cli import models as engine_commands
from got_data.cli import plan as plan_commands
from got_data.cli import spec as spec_commands
from got_data.cli import train as train_commands
from got_data.cli import world as world_commands
from got_data.cli.annotate import annotate_app
from got_data.cli.output import EXIT_CODES_HELP, EXIT_USAGE, guarded, print_error
from got_data.cli.validate import validate
from got_data.errors import InputError
from got_data.view import DEFAULT_LIMIT, write_preview

app = typer.Typer(
    name="got-data",
    help="Build reasoning-chain (GoT) datasets for image generation and editing, check them, train on them.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schema_app = typer.Typer(help="JSON Schemas of the record kinds.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(engine_commands.app, name="models")
app.add_typer(annotate_app, name="annotate")
app.add_typer(spec_commands.app, name="spec")
world_app = typer.Typer(help="The known-answer world: generated scenes and edits with their true answers.",
                        no_args_is_help=True)
eval_app = typer.Typer(help="Score annotation runs.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(eval_app, name="eval")
app.command("validate", help="Check shards: members, JSON, schema and invariants, images, index, manifest. "
            "Exit 1 when any sample is invalid.", epilog=EXIT_CODES_HELP)(validate)

console = Console()
REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _show_version(value: bool) -> None:
    if value:
        console.print(f"got-data {got_data.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="print the got-data version and exit")] = False,
) -> None:
    """Options of `got-data` itself (before any command)."""


@schema_app.command("export")
@guarded
def schema_export(
    out: Annotated[Path, typer.Option(help="folder to write the schema files into")] = REPO_SCHEMAS,
) -> None:
    """Write one JSON Schema per record kind (and the tagged union) into OUT."""
    from got_data.records.schema_export import export_schemas

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder to write the schema files into")
    for path in export_schemas(out):
        console.print(f"wrote {path}")


@app.command("demo")
@guarded
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/demo"),
) -> None:
    """The embedded default: the T2I, edit and multi-turn pipelines on known-answer world scenes with the
    world's trained tiny models, then `validate`, one record, a preview page and fidelity for each."""
    from got_data.cli.demo import run_demo

    run_demo(out, console)


@app.command("view")
@guarded
def view(
    source: Annotated[str, typer.Argument(metavar="OUT_DIR_OR_SHARDS",
                                                help="output folder of an annotate run, shard tar, or glob; "
                                                     "local or in a bucket (s3://bucket/got)")],
    out: Annotated[Optional[str], typer.Option(help="HTML page to write, a path or a bucket URI "
                                                    "(default: SOURCE/preview.html)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many samples")] = DEFAULT_LIMIT,
) -> None:
    """Write one self-contained HTML page showing each sample's images with its boxes drawn over them,
    the GoT text with grounded phrases highlighted, and the prompt or instructions. A sample that does not
    validate is shown with its validation error."""
    if out is not None and Path(out).is_dir():
        raise InputError(f"--out {out} is a folder; give the HTML file to write, e.g. {Path(out) / 'preview.html'}")
    result = write_preview(source, out, limit)
    more = " (limit reached)" if result.truncated else ""
    invalid = f", {result.invalid} invalid: shown with their errors" if result.invalid else ""
    console.print(f"wrote {result.path} ({result.samples} samples{invalid}{more})")


@app.command("report")
@guarded
def report(
    out_dir: Annotated[str, typer.Argument(metavar="OUT_DIR", help="output folder of an annotate run, local or "
                                                                  "in a bucket (s3://bucket/got)")],
    out: Annotated[Optional[str], typer.Option(help="HTML page to write, a path or a bucket URI "
                                                    "(default: OUT_DIR/report.html)")] = None,
    sample: Annotated[int, typer.Option(min=0, help="records drawn at random for the sample table")] = 24,
    seed: Annotated[int, typer.Option(help="seed of the random sample")] = 0,
) -> None:
    """Write one self-contained HTML page about an annotate run: headline numbers, attempts, models and
    prompts, tokens and latency per stage, rejects, distributions beside the GoT paper's, and a random
    sample of records linked to their preview (written beside it as REPORT-samples.html)."""
    from got_data.report import write_report

    result = write_report(out_dir, out, sample_size=sample, seed=seed)
    console.print(f"wrote {result.path} ({result.sample} sampled records)", highlight=False, soft_wrap=True)


app.command("plan")(guarded(plan_commands.plan))
app.command("train", help="Fit the SSGM model (Qwen2.5-VL + LoRA, projectors, 12-channel UNet) on GoT shards.")(
    guarded(train_commands.train)
)
app.command("consolidate", help="Gather an FSDP run's sharded checkpoint into the weights generate loads.")(
    guarded(train_commands.consolidate)
)
app.command("generate", help="Draw an image from a prompt or an (edited) GoT file, optionally editing a source image.")(
    guarded(train_commands.generate)
)


world_app.command("make")(guarded(world_commands.make))
eval_app.command("fidelity")(guarded(world_commands.fidelity))
engine_commands.app.command("train-tiny")(guarded(world_commands.train_tiny))


def _click_exceptions() -> Any:
    """The click exception module typer raises from: its vendored copy (newer typer) or click itself."""
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        from click import exceptions

        return exceptions
    return vendored


def main(argv: list[str] | None = None) -> int:
    """The `got-data` entry point: usage errors as one line on stderr (exit 2), like got-data errors,
    instead of click's multi-line usage panel."""
    errors = _click_exceptions()
    try:
        result = app(args=argv, prog_name="got-data", standalone_mode=False)
    except errors.NoArgsIsHelpError as exc:
        exc.show()  # the command's help, as a bare `got-data` or `got-data schema` has always shown
        return EXIT_USAGE
    except errors.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "got-data"
        print_error(f"{exc.format_message()} (see '{command} --help')")
        return EXIT_USAGE
    except typer.Abort:  # Ctrl-C
        print_error("interrupted")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
