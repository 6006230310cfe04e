"""`got-data models ...`: commands about the models the pools serve."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from got_data.engines.tiny_models import DEFAULT_SEED, build_tiny_models, default_tiny_dir

app = typer.Typer(help="Models served by the engine pools.", no_args_is_help=True)


@app.callback()
def _models() -> None:
    """Models served by the engine pools."""


@app.command("tiny")
def tiny(
    directory: Optional[Path] = typer.Argument(None, help="Output folder (default: the tiny-model cache)."),
    seed: int = typer.Option(DEFAULT_SEED, help="Seed for weights; same seed, same checkpoint."),
    force: bool = typer.Option(False, help="Rebuild even if a complete build is there."),
) -> None:
    """Build tiny random-weight Qwen2-VL (DIR/vlm) and Qwen2 (DIR/llm) checkpoints offline."""
    models = build_tiny_models(directory or default_tiny_dir(), seed=seed, force=force)
    typer.echo(f"vlm: {models.vlm}")
    typer.echo(f"llm: {models.llm}")
