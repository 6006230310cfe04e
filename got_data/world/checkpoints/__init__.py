"""The known-answer world's trained tiny models, committed (a few MB) so the demo and the tests need no
training run. Rebuilt with `got-data models train-tiny DIR` (see `got_data.world.training`); the
report of the run that made them is `training.json` here."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from got_data.engines.tiny_models import TinyModels
from got_data.errors import ModelError


def world_models() -> TinyModels:
    """Folders of the committed world checkpoints: `vlm` (Qwen2-VL) and `llm` (Qwen2)."""
    folder = files(__name__)
    if not isinstance(folder, Path):
        raise ModelError(f"the world models are inside an archive ({folder}); install got-data unzipped to use them")
    models = TinyModels(vlm=folder / "vlm", llm=folder / "llm")
    for path in (models.vlm, models.llm):
        if not (path / "config.json").is_file():
            raise ModelError(f"the world model at {path} is missing; rebuild it with `got-data models train-tiny {folder}`")
    return models
