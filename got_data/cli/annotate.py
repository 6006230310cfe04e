"""`got-data annotate t2i | edit | multiturn`: one shared option set (`AnnotateSettings`), each command's
own input options, and every check on the command line made before Ray or a pool starts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from got_data.cli.output import guarded
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy, parse_caps
from got_data.uri import is_remote

annotate_app = typer.Typer(help="Run an annotation pipeline: inputs in, validated GoT shards out.", no_args_is_help=True)
console = Console()


@dataclass(frozen=True)
class AnnotateSettings:
    """The options every `annotate` command shares (its own input options come on top)."""

    input: str
    out: str
    config: str | None
    vlm: str | None
    llm: str | None
    limit: int | None
    samples_per_shard: int
    ray_address: str | None
    dataset: str | None
    max_images_in_flight: int | str
    max_input_pixels: int
    annotators: str = "auto"
    force: bool = False
    retry_rejects: list[str] | None = None
    max_member_bytes: list[str] | None = None
    allow_paths_outside: list[str] | None = None
    strip_metadata: bool = False
    plan: str | None = None

    def member_policy(self) -> MemberPolicy:
        """The tar member caps for shard inputs: the defaults with each `--max-member-bytes EXT=SIZE` applied."""
        return DEFAULT_POLICY.with_caps(parse_caps(self.max_member_bytes or []))

    def source_options(self) -> dict[str, Any]:
        """What every input opener takes from the shared options: dataset name, tar caps, allowed roots."""
        return {"dataset": self.dataset, "member_policy": self.member_policy(),
                "allow_outside": self.allow_paths_outside or ()}


def _shared_annotate_options(
    *,
    config: Annotated[Optional[str], typer.Option(help="pipeline spec (a path, or a bundled name); default: the command's")] = None,
    vlm: Annotated[Optional[str], typer.Option(help="Qwen2-VL/2.5-VL checkpoint: local path or reachable hub id")] = None,
    llm: Annotated[Optional[str], typer.Option(help="Qwen2.5 checkpoint: local path or reachable hub id")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="stop after this many inputs")] = None,
    samples_per_shard: Annotated[int, typer.Option(min=1, help="samples per shard tar")] = 1000,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset name recorded in each record")] = None,
    max_images_in_flight: Annotated[str, typer.Option(
        metavar="N|auto", help="inputs between reader and writer at once; auto: sized from the pools and CPUs "
        "found (Little's law, docs/CONFIG.md)")] = "auto",
    max_input_pixels: Annotated[int, typer.Option(min=1, help="decompression-bomb guard: larger images are rejected")] = 64_000_000,
    annotators: Annotated[str, typer.Option(
        metavar="N|auto", help="split the input over N annotator actors, each writing its own shards; auto: one "
        "per node of the Ray cluster (one: the run stays in this process; docs/CONFIG.md)")] = "auto",
    max_member_bytes: Annotated[Optional[list[str]], typer.Option(
        metavar="EXT=SIZE", help="cap on a shard input's tar members by extension, e.g. jpg=20MB, json=1M, *=8M "
        "for all others (repeatable; docs/CONFIG.md)")] = None,
    force: Annotated[bool, typer.Option("--force", help="take over an --out folder that holds other files or "
                                                        "another job's output (default: refuse)")] = False,
    retry_rejects: Annotated[Optional[list[str]], typer.Option(
        metavar="REASON", help="redo the inputs an earlier run rejected with this reason (repeatable); transient "
        "rejects (model_failure) are always redone")] = None,
    allow_paths_outside: Annotated[Optional[list[str]], typer.Option(
        "--allow-paths-outside", metavar="ROOT",
        help="also read files under ROOT, a folder or a bucket prefix (s3://bucket/prefix) (repeatable); by default "
             "only files inside the input folder or prefix, or the manifest's, are read")] = None,
    strip_metadata: Annotated[bool, typer.Option(
        "--strip-metadata", help="drop EXIF (GPS, camera), XMP, comments and bytes after the image's end "
                                 "from the published images (ICC colour profiles are kept)")] = False,
    plan: Annotated[Optional[str], typer.Option(
        help="plan.json of `got-data plan` to put this run's figures beside in stats.json "
             "(default: OUT/plan.json when there is one)")] = None,
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
        out_help = "output folder or bucket prefix (s3://bucket/prefix): shards, indexes, manifest, rejects, stats; rerun to resume"
        head = [
            inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=Annotated[str, typer.Argument(help=_INPUT_HELP[name])]),
            inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY,
                              annotation=Annotated[str, typer.Option("--out", help=out_help)]),
        ]

        def command(**kwargs: Any) -> None:
            from got_data.annotate.annotators import parse_annotators
            from got_data.annotate.in_flight import parse_setting
            from got_data.annotate.launch import ModelChoice, annotate
            from got_data.annotate.runner import RunOptions
            from got_data.spec import load_spec

            own_values = {p.name: kwargs.pop(p.name) for p in own}
            settings = AnnotateSettings(**kwargs)
            in_flight = parse_setting(settings.max_images_in_flight)
            annotators = parse_annotators(settings.annotators)
            spec = load_spec(settings.config or default_config)
            source = open_input(settings, **own_values)
            out = settings.out if is_remote(settings.out) else Path(settings.out)
            options = RunOptions(out_dir=out, limit=settings.limit, console=console,
                                 samples_per_shard=settings.samples_per_shard,
                                 max_images_in_flight=in_flight,
                                 max_input_pixels=settings.max_input_pixels,
                                 retry_rejects=tuple(settings.retry_rejects or ()),
                                 strip_metadata=settings.strip_metadata, annotators=annotators)
            models = ModelChoice(vlm=settings.vlm, llm=settings.llm)
            annotate(spec, source, options, models, ray_address=settings.ray_address, force=settings.force,
                     plan_file=settings.plan)

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
    from got_data.ingest import T2IInputs, open_source

    return open_source(settings.input, T2IInputs(image_column=image_column, caption_column=caption_column),
                       **settings.source_options())


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
    from got_data.ingest import EditInputs, open_source

    items = EditInputs(source_column=source_column, target_column=target_column,
                       instruction_column=instruction_column, edit_type_column=edit_type_column)
    return open_source(settings.input, items, **settings.source_options())


@annotate_command("multiturn", "multiturn.yaml")
def annotate_multiturn(
    settings: AnnotateSettings,
    source_column: Annotated[str, typer.Option(help="manifest column holding source images")] = "source",
    turns_column: Annotated[str, typer.Option(help="manifest column holding the turns: [{instruction, image, edit_type?}]")] = "turns",
    instruction_column: Annotated[str, typer.Option(help="manifest column holding a row's steps as one combined "
                                                         "instruction (instead of turns)")] = "instruction",
    final_column: Annotated[str, typer.Option(help="manifest column holding a combined row's final image")] = "final",
    intermediates_column: Annotated[str, typer.Option(help="manifest column holding a combined row's intermediate "
                                                           "images: {\"K\": image after step K}")] = "intermediates",
) -> Any:
    """Multi-turn edit GoT from a source image and its ordered turns, or from one combined instruction with
    the final (and any intermediate) images, split into turns: one chain, one step per turn. Rerun to resume."""
    from got_data.ingest import MultiTurnInputs, open_source

    items = MultiTurnInputs(source_column=source_column, turns_column=turns_column,
                            instruction_column=instruction_column, final_column=final_column,
                            intermediates_column=intermediates_column)
    return open_source(settings.input, items, **settings.source_options())
