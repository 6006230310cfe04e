"""Declarative pipeline specs (`pipelines/*.yaml`), loaded and checked by pydantic.

A spec says which stages run in which order, the model role each stage calls, its prompt file, its
sampling parameters and the schema of its answer. The code of a stage lives in
`got_data/annotate/stages/`; the spec only wires and tunes it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from string import Template
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from got_data.errors import SpecError
from got_data.resources import resolve_resource

Role = Literal["vlm", "llm"]


class SamplingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int | None = 0


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    role: Role | None = Field(default=None, description="model pool the stage calls; None for CPU-only stages")
    prompt: str | None = Field(default=None, description="template file in prompts/")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    output_schema: str | None = Field(default=None, description="name of the answer schema, for structured output")
    options: dict[str, Any] = Field(default_factory=dict, description="stage-specific knobs, see the stage class")


class ModelRoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_pixels: int | None = None
    max_pixels: int | None = None
    num_actors: int = Field(default=1, ge=1)
    max_in_flight_per_actor: int = Field(default=128, ge=1)
    max_model_len: int = Field(default=4096, gt=0)


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    record_kind: Literal["t2i", "edit", "multiturn"]
    models: dict[Role, ModelRoleSpec] = Field(default_factory=dict)
    stages: list[StageSpec] = Field(min_length=1)
    source: Path | None = Field(default=None, exclude=True)

    def roles(self) -> list[Role]:
        return sorted({s.role for s in self.stages if s.role is not None})


class PromptTemplate:
    """A stage prompt: `[system]`, `[user]` and optional variant sections (e.g. `[user_with_caption]`)
    with `$name` placeholders (string.Template). `$` keeps JSON examples in prompts free of escaping.
    """

    SECTION_RE = re.compile(r"^\[([a-z_]+)\]\s*$", re.MULTILINE)

    def __init__(self, path: Path):
        self.path = path
        text = path.read_text(encoding="utf-8")
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        parts = self.SECTION_RE.split(text)
        self.sections = {name: Template(body.strip()) for name, body in zip(parts[1::2], parts[2::2])}
        if "user" not in self.sections:
            raise SpecError(f"prompt {path} needs a [user] section")

    def render(self, user_section: str = "user", **values: str) -> tuple[str | None, str]:
        """(system, user) text; raises SpecError naming a missing section or placeholder."""
        if user_section not in self.sections:
            raise SpecError(f"prompt {self.path.name} has no [{user_section}] section")
        try:
            system = self.sections["system"].substitute(values) if "system" in self.sections else None
            return system, self.sections[user_section].substitute(values)
        except KeyError as exc:
            raise SpecError(f"prompt {self.path.name} needs a value for ${exc.args[0]}") from exc


def load_spec(path: str | Path) -> PipelineSpec:
    """Load and check a pipeline spec: a user path, or the name of a bundled one (`t2i.yaml`)."""
    resolved = resolve_resource("pipelines", path if str(path).endswith((".yaml", ".yml")) else f"{path}.yaml")
    try:
        raw = yaml.safe_load(resolved.read_text(encoding="utf-8"))
        spec = PipelineSpec.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"pipeline spec {resolved} is invalid: {exc}") from exc
    spec.source = resolved
    names = [s.name for s in spec.stages]
    if len(set(names)) != len(names):
        raise SpecError(f"pipeline spec {resolved}: stage names repeat: {names}")
    for stage in spec.stages:
        if stage.role is not None and stage.prompt is None:
            raise SpecError(f"pipeline spec {resolved}: stage {stage.name!r} calls a model but names no prompt")
        if stage.prompt is not None:
            load_prompt(stage.prompt)
    return spec


def load_prompt(name: str) -> PromptTemplate:
    return PromptTemplate(resolve_resource("prompts", name))
