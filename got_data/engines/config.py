"""Pool configuration: which model serves a role, and how many engines with what limits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from got_data.engines.errors import PoolConfigError
from got_data.families import Family, UnknownFamilyError, family_for_model_type
from got_data.families import family as model_family

ROLES = ("vlm", "llm")
AUTO = "auto"
# Requests kept outstanding per engine when `max_in_flight_per_actor` is "auto" (Little's law:
# in-flight = throughput x latency; an engine's throughput stops growing once its batch is full, so
# the batch it can run at once is what keeps it busy). On a GPU that is vLLM's offline batch
# (`max_num_seqs`: 256 below 70 GB of device memory, 1024 above; an engine_kwargs value wins). On a
# CPU a step's time grows with the batch once the cores are busy, so more in flight only adds latency.
GPU_ENGINE_IN_FLIGHT = 256
CPU_ENGINE_IN_FLIGHT = 32


@dataclass
class PoolConfig:
    """One role's engines. `num_actors` is the fixed size; `min_actors`/`max_actors` make it elastic
    (start at min, add actors up to max while requests queue for capacity)."""

    role: str
    model: str
    family: str = "auto"
    num_actors: int = 1
    min_actors: int | None = None
    max_actors: int | None = None
    tensor_parallel_size: int = 1
    max_in_flight_per_actor: int | str = AUTO  # requests outstanding per engine; "auto": in_flight_per_actor()
    max_model_len: int = 4096
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_attempts: int = 3
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    num_cpus_per_actor: float = 1
    # Ray scheduling strategy for the actors: "SPREAD" puts engines on different nodes.
    scheduling_strategy: str | None = "SPREAD"
    max_images_per_prompt: int = 4
    # Requests that become ready together go to an actor in one Ray call of at most this many:
    # per-call overhead is then paid once per batch, not once per request.
    max_batch_per_call: int = 256
    # The actor renders a call's prompts this many at a time and hands each chunk to the engine at
    # once, so the engine starts on the first while the rest render.
    render_chunk: int = 32

    def resolved(self) -> "PoolConfig":
        """A copy with the family detected and every field checked; raises PoolConfigError."""
        if self.role not in ROLES:
            raise PoolConfigError(f"unknown role {self.role!r}; expected one of {ROLES}")
        try:
            family = model_family(self.family) if self.family != "auto" else detect_family(self.model)
        except UnknownFamilyError as exc:
            raise PoolConfigError(str(exc)) from None
        if self.role == "vlm" and not family.vision:
            raise PoolConfigError(f"role 'vlm' needs a vision family, but {self.model} is {family!r}")
        lo, hi = self.size_bounds()
        if lo < 1 or hi < lo:
            raise PoolConfigError(f"pool size must satisfy 1 <= min <= max, got min={lo} max={hi}")
        if self.max_in_flight_per_actor != AUTO and (
                not isinstance(self.max_in_flight_per_actor, int) or self.max_in_flight_per_actor < 1):
            raise PoolConfigError(f"max_in_flight_per_actor must be 'auto' or >= 1, got {self.max_in_flight_per_actor!r}")
        for name in ("tensor_parallel_size", "max_model_len", "max_attempts", "max_batch_per_call", "render_chunk"):
            if getattr(self, name) < 1:
                raise PoolConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        return replace(self, family=family.value)

    def in_flight_per_actor(self, on_gpu: bool) -> int:
        """Requests kept outstanding per engine: the configured number, or for "auto" the batch the
        engine runs at once (`max_num_seqs` in engine_kwargs, else GPU_ENGINE_IN_FLIGHT on a GPU and
        CPU_ENGINE_IN_FLIGHT on a CPU)."""
        if isinstance(self.max_in_flight_per_actor, int):
            return self.max_in_flight_per_actor
        batch = self.engine_kwargs.get("max_num_seqs")
        if batch:
            return int(batch)
        return GPU_ENGINE_IN_FLIGHT if on_gpu else CPU_ENGINE_IN_FLIGHT

    def size_bounds(self) -> tuple[int, int]:
        """(min, max) actors; both equal `num_actors` unless min/max are given."""
        lo = self.min_actors if self.min_actors is not None else self.num_actors
        hi = self.max_actors if self.max_actors is not None else max(lo, self.num_actors)
        return lo, hi

    def mm_processor_kwargs(self) -> dict[str, int]:
        """Processor settings fixed per pool, so every request for an image is processed alike."""
        kwargs = {}
        if self.min_pixels is not None:
            kwargs["min_pixels"] = self.min_pixels
        if self.max_pixels is not None:
            kwargs["max_pixels"] = self.max_pixels
        return kwargs


def read_model_config(model: str) -> dict:
    """config.json of a local checkpoint folder, or of a hub id already in the local HF cache."""
    path = Path(model)
    if path.is_dir():
        config_file = path / "config.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            config_file = Path(hf_hub_download(model, "config.json"))
        except Exception as exc:  # offline and not cached, or not a repo id
            raise PoolConfigError(
                f"cannot read config.json of model {model!r} (not a folder, not in the local HF cache): {exc}"
            ) from exc
    if not config_file.is_file():
        raise PoolConfigError(f"{config_file} is missing: is {model!r} a model folder?")
    return json.loads(config_file.read_text())


def detect_family(model: str) -> Family:
    """Family from config.json's model_type."""
    try:
        return family_for_model_type(read_model_config(model).get("model_type"))
    except UnknownFamilyError as exc:
        raise PoolConfigError(f"model {model!r}: {exc}") from None
