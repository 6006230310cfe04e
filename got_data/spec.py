"""Declarative pipeline specs (`pipelines/*.yaml`), loaded and checked by pydantic.

A spec says which stages run in which order, and tunes each: its sampling parameters and options
(a role and a prompt default to the stage class's role and `<stage>.txt`). The code of a stage lives
in `got_data/annotate/stages/` (or a user's stage module); the spec only wires and tunes it. A spec
may extend another (`extends:`, `got_data/spec_overlay.py`). Loading checks everything that can be
checked without a model: stage names, roles, options, prompts and the reads/writes chain.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from got_data.errors import SpecError
from got_data.ingest.images import DEFAULT_MIN_SIDE
from got_data.records.models import RecordKind
from got_data.resources import resolve_resource
from got_data.spec_overlay import read_spec_tree, resolve_spec_path

Role = Literal["vlm", "llm"]
MAX_MIN_IMAGE_SIDE = 8192  # a larger minimum side would refuse every photograph: surely a typo


class SamplingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int | None = 0


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    role: Role | None = Field(default=None, description="model pool the stage calls; filled from the stage class")
    prompt: str | None = Field(default=None, description="template file in prompts/; default `<name>.txt`")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    options: dict[str, Any] = Field(default_factory=dict, description="checked against the stage's Options model")


class ModelRoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_pixels: int | None = None
    max_pixels: int | None = None
    num_actors: int = Field(default=1, ge=1)
    max_in_flight_per_actor: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto", description="requests outstanding per engine; auto: the engine's batch (docs/CONFIG.md)")
    max_model_len: int = Field(default=4096, gt=0)


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    record_kind: RecordKind
    image_format: Literal["png", "jpeg", "keep"] = Field(
        default="png", description="one stored format per run, so each image role has one member name (docs/CONFIG.md)"
    )
    min_image_side: int = Field(
        default=DEFAULT_MIN_SIDE, ge=1, le=MAX_MIN_IMAGE_SIDE,
        description="inputs with a side shorter than this many pixels are rejected as `too_small` (docs/CONFIG.md)",
    )
    models: dict[Role, ModelRoleSpec] = Field(default_factory=dict)
    stages: list[StageSpec] = Field(min_length=1)
    source: Path | None = Field(default=None, exclude=True)
    prompt_dirs: list[Path] = Field(default_factory=list, exclude=True)  # `prompts/` beside the spec and its bases

    def roles(self) -> list[Role]:
        return sorted({s.role for s in self.stages if s.role is not None})


class PromptTemplate:
    """A stage prompt: `[system]`, `[user]` and optional variant sections (e.g. `[user_with_caption]`)
    with `$name` placeholders (string.Template). `$` keeps JSON examples in prompts free of escaping.
    """

    SECTION_RE = re.compile(r"^\[([a-z_]+)\]\s*$", re.MULTILINE)

    def __init__(self, path: Path):
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"prompt {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
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


# Keys today's loader refuses that an earlier one took, and what to write instead.
RETIRED_STAGE_KEYS = {
    "output_schema": "delete the line: each stage picks its own answer schema (got_data/annotate/answer_schemas.py)",
}


def load_spec(path: str | Path, stage_modules: Iterable[str] = ()) -> PipelineSpec:
    """Load and check a pipeline spec: a user path, or the name of a bundled one (`t2i.yaml`).

    `stage_modules` (and `GOT_DATA_STAGE_MODULES`) name modules defining more stages. Every problem is
    a SpecError with a one-line message naming the file, the stage and the key."""
    resolved = resolve_spec_path(path)
    raw, files = read_spec_tree(resolved)
    for n, stage in enumerate(raw.get("stages") or []):
        for key, instead in RETIRED_STAGE_KEYS.items():
            if isinstance(stage, dict) and key in stage:
                raise SpecError(f"pipeline spec {resolved}: stage {stage.get('name', n)!r}: "
                                f"{key!r} is no longer a spec key; {instead}")
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"pipeline spec {resolved} is invalid: {one_line(exc, raw)}") from exc
    spec.source = resolved
    spec.prompt_dirs = [f.parent / "prompts" for f in files]
    from got_data.annotate.spec_check import check_spec  # the stage registry imports this module

    try:
        check_spec(spec, stage_modules)
    except SpecError as exc:
        raise SpecError(f"pipeline spec {resolved}: {exc}") from exc
    return spec


def one_line(exc: ValidationError, raw: dict[str, Any]) -> str:
    """pydantic's errors on one line, a stage named by its name: `stages[ground].sampling.top_p: ...`."""
    parts = []
    for error in exc.errors():
        loc = list(error["loc"])
        if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int):
            stages = raw.get("stages") or []
            stage = stages[loc[1]] if loc[1] < len(stages) else None
            loc[1] = f"[{stage.get('name') if isinstance(stage, dict) else loc[1]}]"
        where = ".".join(str(p) for p in loc).replace(".[", "[")
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def load_prompt(name: str, search_dirs: Sequence[Path] = ()) -> PromptTemplate:
    """A prompt template: from the first of `search_dirs` holding it, else a user path, else the bundled one."""
    for folder in search_dirs:
        if (folder / name).is_file():
            return PromptTemplate(folder / name)
    return PromptTemplate(resolve_resource("prompts", name))
