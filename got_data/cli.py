"""The `got-data` command. Heavy imports (Ray, vLLM, torch) happen inside the commands that need
them, so `got-data --help` and `got-data validate` start fast."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from got_data.errors import GotDataError
from got_data.shards.commands import validate
from got_data.train import commands as train_commands

app = typer.Typer(
    name="got-data",
    help="Build reasoning-chain (GoT) datasets for image generation and editing, check them, train on them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schema_app = typer.Typer(help="JSON Schemas of the record kinds.", no_args_is_help=True)
models_app = typer.Typer(help="Model checkpoints: build the tiny offline models.", no_args_is_help=True)
annotate_app = typer.Typer(help="Run an annotation pipeline: inputs in, validated GoT shards out.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(models_app, name="models")
app.add_typer(annotate_app, name="annotate")
app.command("validate", help="Check shards: members, JSON, schema and invariants, images, index, manifest.")(validate)

console = Console()
REPO_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def _fail(exc: GotDataError) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2) from exc


def _guarded(command: Callable[..., None]) -> Callable[..., None]:
    """The command with got-data errors reported as one red line and exit code 2, not a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except GotDataError as exc:
            _fail(exc)

    return run


@schema_app.command("export")
def schema_export(
    out: Annotated[Path, typer.Option(help="folder to write the schema files into")] = REPO_SCHEMAS,
) -> None:
    """Write one JSON Schema per record kind (and the tagged union) into OUT."""
    from got_data.records.schema_export import export_schemas

    for path in export_schemas(out):
        console.print(f"wrote {path}")


@models_app.command("tiny")
def models_tiny(
    out: Annotated[Optional[Path], typer.Argument(help="folder for the vlm/ and llm/ checkpoints")] = None,
    seed: Annotated[int, typer.Option(help="random seed of the weights")] = 0,
) -> None:
    """Build tiny random-weight Qwen2-VL (vlm) and Qwen2 (llm) checkpoints offline. Their text is meaningless."""
    from got_data.engines.tiny import default_tiny_dir, ensure_tiny_models

    models = ensure_tiny_models(out or default_tiny_dir(), seed=seed)
    console.print(f"vlm: {models.vlm}\nllm: {models.llm}")


InputArg = Annotated[str, typer.Argument(help="folder of images, JSONL/Parquet manifest, or WebDataset shards")]
OutOpt = Annotated[Path, typer.Option("--out", help="output folder: shards, indexes, manifest, rejects, stats")]


@annotate_app.command("t2i")
@_guarded
def annotate_t2i(
    input: InputArg,
    out: OutOpt,
    config: Annotated[str, typer.Option(help="pipeline spec (a path, or a bundled name)")] = "t2i.yaml",
    vlm: Annotated[Optional[str], typer.Option(help="Qwen2-VL/2.5-VL checkpoint: local path or reachable hub id")] = None,
    llm: Annotated[Optional[str], typer.Option(help="Qwen2.5 checkpoint: local path or reachable hub id")] = None,
    limit: Annotated[Optional[int], typer.Option(help="stop after this many inputs")] = None,
    samples_per_shard: Annotated[int, typer.Option(help="samples per shard tar")] = 1000,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    image_column: Annotated[str, typer.Option(help="manifest column holding image paths")] = "image",
    caption_column: Annotated[str, typer.Option(help="manifest column holding captions")] = "caption",
    dataset: Annotated[Optional[str], typer.Option(help="dataset name recorded in each record")] = None,
    max_images_in_flight: Annotated[int, typer.Option(help="inputs between reader and writer at once")] = 32,
    max_input_pixels: Annotated[int, typer.Option(help="decompression-bomb guard: larger images are rejected")] = 64_000_000,
) -> None:
    """Text-to-image GoT: recaption -> entity extraction -> grounding -> assembly. Rerun to resume."""
    from got_data.annotate.launch import ModelChoice, annotate
    from got_data.annotate.runner import RunOptions
    from got_data.ingest import open_source
    from got_data.spec import load_spec

    spec = load_spec(config)
    source = open_source(input, image_column=image_column, caption_column=caption_column, dataset=dataset)
    options = RunOptions(out_dir=out, limit=limit, samples_per_shard=samples_per_shard, console=console,
                         max_images_in_flight=max_images_in_flight, max_input_pixels=max_input_pixels)
    annotate(spec, source, options, ModelChoice(vlm=vlm, llm=llm), ray_address=ray_address)


@app.command("demo")
@_guarded
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/demo"),
) -> None:
    """The embedded default: the T2I pipeline on the bundled sample images with the tiny models,
    then `validate` on the output and one record printed."""
    from got_data.demo import run_demo

    run_demo(out, console)


app.command("train", help="Fit the SSGM model (Qwen2.5-VL + LoRA, projectors, 12-channel UNet) on GoT shards.")(
    _guarded(train_commands.train)
)
app.command("generate", help="Draw an image from a prompt or an (edited) GoT file, optionally editing a source image.")(
    _guarded(train_commands.generate)
)


def main() -> None:
    app()


if __name__ == "__main__":
    app()
