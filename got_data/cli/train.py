"""Typer-compatible command functions; the CLI mounts them as `got-data train`, `got-data consolidate` and
`got-data generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from got_data.errors import InputError


def train(
    config: Annotated[Path, typer.Option("--config", help="training config (YAML), see pipelines/train-*.yaml")],
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="run as a Ray Train job with N data-parallel workers (default: one process, no Ray)"
    )] = None,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", min=0, help="GPUs per worker (0: CPU, gloo)")] = 0.0,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="join this Ray cluster ('auto' or head:port); default: a local Ray on loopback"
    )] = None,
    max_failures: Annotated[int, typer.Option(
        "--max-failures", min=0, help="worker-group restarts (from the newest checkpoint) before the job fails"
    )] = 3,
) -> None:
    """Fit the GoT model (Qwen2.5-VL + LoRA, SSGM UNet) from GoT shards; resumes from the run folder."""
    from got_data.train.config import batch_plan, load_config

    settings = load_config(config)
    if workers is None:
        if ray_address is not None or gpus_per_worker:
            raise InputError("--ray-address and --gpus-per-worker need --workers N (without it training runs in one process)")
        if settings.train.parallelism == "fsdp":
            raise InputError("train.parallelism fsdp shards the model over Ray Train workers: give --workers N")
        from got_data.train.trainer import Trainer

        Trainer(settings, log=typer.echo).run()
        return
    from got_data.train.distributed import ClusterSettings, run_distributed

    batch_plan(settings.train, workers)
    cluster = ClusterSettings(workers=workers, gpus_per_worker=gpus_per_worker, address=ray_address, max_failures=max_failures)
    run_distributed(settings, cluster, log=typer.echo)


def consolidate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="a step-NNNNNNNN folder of a train.parallelism fsdp run")],
) -> None:
    """Gather an FSDP run's sharded checkpoint into the full weights generate and init_from read (one process,
    on the CPU; `got-data train --workers N` does it for the run's last checkpoint)."""
    from got_data.train.sharded_checkpoint import consolidate as consolidate_checkpoint

    consolidate_checkpoint(checkpoint, log=typer.echo)


def generate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="a step-NNNNNNNN folder written by `got-data train`")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write; the GoT used goes beside it as <out>.got.txt")],
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="prompt (T2I) or instruction (with --source)")] = None,
    got: Annotated[Optional[Path], typer.Option("--got", help="a GoT text file to draw from (e.g. one you edited)")] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="source image: edit it instead of drawing anew")] = None,
    width: Annotated[Optional[int], typer.Option(help="image width (default: the training resolution)")] = None,
    height: Annotated[Optional[int], typer.Option(help="image height (default: the training resolution)")] = None,
    steps: Annotated[int, typer.Option(help="denoising steps")] = 30,
    seed: Annotated[int, typer.Option(help="noise seed")] = 0,
    text_scale: Annotated[Optional[float], typer.Option(help="a_t (default 7.5 T2I, 4.0 edit)")] = None,
    spatial_scale: Annotated[Optional[float], typer.Option(help="a_s (default 4.0 T2I, 3.0 edit)")] = None,
    reference_scale: Annotated[Optional[float], typer.Option(help="a_r (default 1.0 T2I, 1.5 edit)")] = None,
    device: Annotated[Optional[str], typer.Option(help="torch device (default: the training config's)")] = None,
) -> None:
    """Write (or take) a GoT and draw the image it describes; writes the PNG and the GoT beside it."""
    from got_data.train.generate import GoTGenerator
    from got_data.train.guidance import EDIT_SCALES, T2I_SCALES, GuidanceScales

    if prompt is None and got is None:
        raise InputError("give --prompt, --got, or both")
    got_text = None if got is None else read_got_file(got)
    source_image = None if source is None else read_source_image(source)
    defaults = EDIT_SCALES if source_image is not None else T2I_SCALES
    scales = GuidanceScales(
        text=defaults.text if text_scale is None else text_scale,
        spatial=defaults.spatial if spatial_scale is None else spatial_scale,
        reference=defaults.reference if reference_scale is None else reference_scale,
    )
    generator = GoTGenerator.from_checkpoint(checkpoint, device=device)
    size = generator.default_size
    drawing = generator.run(prompt, got_text, source_image, width or size, height or size, steps, scales, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    drawing.image.save(out, format="PNG")
    got_path = got_text_path(out)
    got_path.write_text(drawing.got + "\n", encoding="utf-8")
    typer.echo(f"wrote {out} and {got_path}")


def read_got_file(path: Path) -> str:
    """A GoT text file, checked (UTF-8, parses as a GoT) before any model loads."""
    from got_data.errors import CodecError
    from got_data.records import parse_got

    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"cannot read GoT file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"GoT file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    try:
        parse_got(text)
    except CodecError as exc:
        raise InputError(f"the given GoT does not parse: {exc}") from exc
    return text


def read_source_image(path: Path):
    """The image to edit, parsed only as the format its file name claims (no other Pillow plugin)."""
    from got_data.errors import ShardError
    from got_data.train.conditioning import open_image

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read source image {path}: {exc}") from exc
    try:
        return open_image(data, path.name, f"source image {path}")
    except ShardError as exc:
        raise InputError(str(exc)) from exc


def got_text_path(out: Path) -> Path:
    """Where generate writes the GoT it used: beside the image, `<stem>.got.txt`."""
    return out.with_name(out.stem + ".got.txt")
