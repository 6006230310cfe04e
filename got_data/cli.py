"""The `got-data` command. Heavy imports (Ray, vLLM, torch) happen inside the commands that need
them, so `got-data --help` and `got-data validate` start fast."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

import got_data
from got_data import spec_commands
from got_data.cli_output import EXIT_CODES_HELP, EXIT_USAGE, guarded, print_error
from got_data.engines import commands as engine_commands
from got_data.errors import InputError
from got_data.shards.commands import validate
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy, parse_caps
from got_data.train import commands as train_commands
from got_data.view import DEFAULT_LIMIT, write_preview
from got_data.world import commands as world_commands

app = typer.Typer(
    name="got-data",
    help="Build reasoning-chain (GoT) datasets for image generation and editing, check them, train on them.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schema_app = typer.Typer(help="JSON Schemas of the record kinds.", no_args_is_help=True)
annotate_app = typer.Typer(help="Run an annotation pipeline: inputs in, validated GoT shards out.", no_args_is_help=True)
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
REPO_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


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


@dataclass(frozen=True)
class AnnotateSettings:
    """The options every `annotate` command shares (its own input options come on top)."""

    input: str
    out: Path
    config: str | None
    vlm: str | None
    llm: str | None
    limit: int | None
    samples_per_shard: int
    ray_address: str | None
    dataset: str | None
    max_images_in_flight: int
    max_input_pixels: int
    force: bool = False
    retry_rejects: list[str] | None = None
    max_member_bytes: list[str] | None = None
    allow_paths_outside: list[Path] | None = None
    strip_metadata: bool = False

    def member_policy(self) -> MemberPolicy:
        """The tar member caps for shard inputs: the defaults with each `--max-member-bytes EXT=SIZE` applied."""
        return DEFAULT_POLICY.with_caps(parse_caps(self.max_member_bytes or []))


def _shared_annotate_options(
    *,
    config: Annotated[Optional[str], typer.Option(help="pipeline spec (a path, or a bundled name); default: the command's")] = None,
    vlm: Annotated[Optional[str], typer.Option(help="Qwen2-VL/2.5-VL checkpoint: local path or reachable hub id")] = None,
    llm: Annotated[Optional[str], typer.Option(help="Qwen2.5 checkpoint: local path or reachable hub id")] = None,
    limit: Annotated[Optional[int], typer.Option(help="stop after this many inputs")] = None,
    samples_per_shard: Annotated[int, typer.Option(help="samples per shard tar")] = 1000,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset name recorded in each record")] = None,
    max_images_in_flight: Annotated[int, typer.Option(help="inputs between reader and writer at once")] = 32,
    max_input_pixels: Annotated[int, typer.Option(help="decompression-bomb guard: larger images are rejected")] = 64_000_000,
    max_member_bytes: Annotated[Optional[list[str]], typer.Option(
        metavar="EXT=SIZE", help="cap on a shard input's tar members by extension, e.g. jpg=20MB, json=1M, *=8M "
        "for all others (repeatable; docs/CONFIG.md)")] = None,
    force: Annotated[bool, typer.Option("--force", help="take over an --out folder that holds other files or "
                                                        "another job's output (default: refuse)")] = False,
    retry_rejects: Annotated[Optional[list[str]], typer.Option(
        metavar="REASON", help="redo the inputs an earlier run rejected with this reason (repeatable); transient "
        "rejects (model_failure) are always redone")] = None,
    allow_paths_outside: Annotated[Optional[list[Path]], typer.Option(
        "--allow-paths-outside", metavar="ROOT",
        help="also read files under ROOT (repeatable); by default only files inside the input folder or the "
             "manifest's folder are read")] = None,
    strip_metadata: Annotated[bool, typer.Option(
        "--strip-metadata", help="drop EXIF (GPS, camera), XMP, comments and bytes after the image's end "
                                 "from the published images (ICC colour profiles are kept)")] = False,
) -> None:
    """Never called: its signature declares the options every annotate command shares."""


_INPUT_HELP = {
    "t2i": "folder of images, JSONL/Parquet manifest, or WebDataset shards",
    "edit": "JSONL/Parquet manifest of edit pairs, folder of KEY/source.*, KEY/target.*, KEY/instruction.txt, "
            "or WebDataset shards",
    "multiturn": "JSONL/Parquet manifest of edit sequences (a source column and a turns column)",
}


def annotate_command(name: str, default_config: str) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Register `got-data annotate NAME`: INPUT, --out, the command's own input options (the decorated
    function's keyword parameters, after `settings`) and the shared options, in one signature.

    The decorated function opens the input: `open_input(settings, **own_options) -> Source`.
    """

    def register(open_input: Callable[..., Any]) -> Callable[..., None]:
        own = list(inspect.signature(open_input, eval_str=True).parameters.values())[1:]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        shared = list(inspect.signature(_shared_annotate_options, eval_str=True).parameters.values())
        out_help = "output folder: shards, indexes, manifest, rejects, stats; rerun to resume"
        head = [
            inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=Annotated[str, typer.Argument(help=_INPUT_HELP[name])]),
            inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY,
                              annotation=Annotated[Path, typer.Option("--out", help=out_help)]),
        ]

        def command(**kwargs: Any) -> None:
            from got_data.annotate.launch import ModelChoice, annotate
            from got_data.annotate.runner import RunOptions
            from got_data.spec import load_spec

            own_values = {p.name: kwargs.pop(p.name) for p in own}
            settings = AnnotateSettings(**kwargs)
            spec = load_spec(settings.config or default_config)
            source = open_input(settings, **own_values)
            options = RunOptions(out_dir=settings.out, limit=settings.limit, console=console,
                                 samples_per_shard=settings.samples_per_shard,
                                 max_images_in_flight=settings.max_images_in_flight,
                                 max_input_pixels=settings.max_input_pixels,
                                 retry_rejects=tuple(settings.retry_rejects or ()),
                                 strip_metadata=settings.strip_metadata)
            models = ModelChoice(vlm=settings.vlm, llm=settings.llm)
            annotate(spec, source, options, models, ray_address=settings.ray_address, force=settings.force)

        command.__name__ = f"annotate_{name}"
        command.__doc__ = open_input.__doc__
        command.__signature__ = inspect.Signature(head + own + shared)  # type: ignore[attr-defined]
        annotate_app.command(name)(guarded(command))
        return open_input

    return register


@annotate_command("t2i", "t2i.yaml")
def annotate_t2i(
    settings: AnnotateSettings,
    image_column: Annotated[str, typer.Option(help="manifest column holding image paths")] = "image",
    caption_column: Annotated[str, typer.Option(help="manifest column holding captions")] = "caption",
) -> Any:
    """Text-to-image GoT: recaption -> entity extraction -> grounding -> assembly. Rerun to resume."""
    from got_data.ingest import open_source

    return open_source(settings.input, image_column=image_column, caption_column=caption_column, dataset=settings.dataset,
                       member_policy=settings.member_policy(), allow_outside=settings.allow_paths_outside or ())


@annotate_command("edit", "edit.yaml")
def annotate_edit(
    settings: AnnotateSettings,
    source_column: Annotated[str, typer.Option(help="manifest column holding source images")] = "source",
    target_column: Annotated[str, typer.Option(help="manifest column holding edited (target) images")] = "target",
    instruction_column: Annotated[str, typer.Option(help="manifest column holding the instructions")] = "instruction",
    edit_type_column: Annotated[str, typer.Option(help="manifest column holding edit types (optional)")] = "edit_type",
) -> Any:
    """Single-turn edit GoT from (source, target, instruction) pairs: edit parse -> describe -> localize ->
    crop-describe -> reinstruction -> assembly. Rerun to resume."""
    from got_data.ingest import open_edit_source

    return open_edit_source(settings.input, source_column=source_column, target_column=target_column,
                            instruction_column=instruction_column, edit_type_column=edit_type_column,
                            dataset=settings.dataset, member_policy=settings.member_policy(),
                            allow_outside=settings.allow_paths_outside or ())


@annotate_command("multiturn", "multiturn.yaml")
def annotate_multiturn(
    settings: AnnotateSettings,
    source_column: Annotated[str, typer.Option(help="manifest column holding source images")] = "source",
    turns_column: Annotated[str, typer.Option(help="manifest column holding the turns: [{instruction, image, edit_type?}]")] = "turns",
) -> Any:
    """Multi-turn edit GoT from a source image and its ordered turns: one chain, one step per turn. Rerun to resume."""
    from got_data.ingest import open_edit_source

    return open_edit_source(settings.input, multiturn=True, source_column=source_column, turns_column=turns_column,
                            dataset=settings.dataset, allow_outside=settings.allow_paths_outside or ())


@app.command("demo")
@guarded
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/demo"),
) -> None:
    """The embedded default: the T2I, edit and multi-turn pipelines on known-answer world scenes with the
    world's trained tiny models, then `validate`, one record, a preview page and fidelity for each."""
    from got_data.demo import run_demo

    run_demo(out, console)


@app.command("view")
@guarded
def view(
    source: Annotated[str, typer.Argument(metavar="OUT_DIR_OR_SHARDS",
                                                help="output folder of an annotate run, shard tar, or glob")],
    out: Annotated[Optional[Path], typer.Option(help="HTML page to write (default: SOURCE/preview.html)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many samples")] = DEFAULT_LIMIT,
) -> None:
    """Write one self-contained HTML page showing each sample's images with its boxes drawn over them,
    the GoT text with grounded phrases highlighted, and the prompt or instructions. A sample that does not
    validate is shown with its validation error."""
    if out is not None and out.is_dir():
        raise InputError(f"--out {out} is a folder; give the HTML file to write, e.g. {out / 'preview.html'}")
    result = write_preview(source, out, limit)
    more = " (limit reached)" if result.truncated else ""
    invalid = f", {result.invalid} invalid: shown with their errors" if result.invalid else ""
    console.print(f"wrote {result.path} ({result.samples} samples{invalid}{more})")


@app.command("report")
@guarded
def report(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="output folder of an annotate run")],
    out: Annotated[Optional[Path], typer.Option(help="HTML page to write (default: OUT_DIR/report.html)")] = None,
    sample: Annotated[int, typer.Option(min=0, help="records drawn at random for the sample table")] = 24,
    seed: Annotated[int, typer.Option(help="seed of the random sample")] = 0,
) -> None:
    """Write one self-contained HTML page about an annotate run: headline numbers, attempts, models and
    prompts, tokens and latency per stage, rejects, distributions beside the GoT paper's, and a random
    sample of records linked to their preview (written beside it as REPORT-samples.html)."""
    from got_data.report import write_report

    result = write_report(out_dir, out, sample_size=sample, seed=seed)
    console.print(f"wrote {result.path} ({result.sample} sampled records)", highlight=False, soft_wrap=True)


app.command("train", help="Fit the SSGM model (Qwen2.5-VL + LoRA, projectors, 12-channel UNet) on GoT shards.")(
    guarded(train_commands.train)
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
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


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
