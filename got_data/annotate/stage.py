"""What a stage is: one class in one file with a name, the model role it calls, its options (a pydantic
model), what it reads and writes on the work item, and an async `run`. Subclasses register themselves
by name, so a spec (`pipelines/*.yaml`) can name any stage whose module was imported: the built-in ones
(`got_data/annotate/stages/`) and those of the modules a user names (`GOT_DATA_STAGE_MODULES`).
"""

from __future__ import annotations

import functools
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from got_data.errors import SpecError
from got_data.records import StageUsage
from got_data.spec import PromptTemplate, StageSpec, load_prompt

STAGE_MODULES_ENV = "GOT_DATA_STAGE_MODULES"
BUILTIN_STAGES_PACKAGE = "got_data.annotate.stages"


class StageReject(Exception):
    """This input cannot go on: it lands in the rejects table with the stage, reason and detail."""

    def __init__(self, stage: str, reason: str, detail: str = ""):
        super().__init__(f"{stage}: {reason} {detail}".strip())
        self.stage = stage
        self.reason = reason
        self.detail = detail


@dataclass
class Usage:
    """Token counts per stage for one work item, copied into the record's provenance."""

    by_stage: dict[str, StageUsage] = field(default_factory=dict)

    def add(self, stage: str, prompt_tokens: int, output_tokens: int) -> None:
        current = self.by_stage.setdefault(stage, StageUsage())
        current.requests += 1
        current.prompt_tokens += prompt_tokens
        current.output_tokens += output_tokens


class StageOptions(BaseModel):
    """A stage's `options:` in the spec. Subclasses give each field a default and a one-line
    `description` (docs/CONFIG.md's tables are generated from them); unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


STAGE_CLASSES: dict[str, type[Stage]] = {}


class Stage(ABC):
    """Base class. Subclasses set `name`, `role`, `reads`, `writes` (and `optional_reads`, fields read
    only if an earlier stage wrote them), nest their `Options` model and implement `run`.

    Work fields are named as on the work kind (`got_data/annotate/work_items.py`); `steps.X` is field X of
    every edit step. A subclass that sets `name` registers itself under it.
    """

    name: ClassVar[str]
    role: ClassVar[str | None] = None
    reads: ClassVar[tuple[str, ...]] = ()
    optional_reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[StageOptions]] = StageOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = _audited(cls.__dict__["run"])  # type: ignore[method-assign]
        if "name" not in cls.__dict__:
            return
        known = STAGE_CLASSES.get(cls.name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise SpecError(f"two stages are called {cls.name!r}: {known.__module__}.{known.__qualname__} "
                            f"and {cls.__module__}.{cls.__qualname__}; rename one")
        STAGE_CLASSES[cls.name] = cls

    def __init__(self, spec: StageSpec, family: str | None = None, prompt_dirs: Sequence[Path] = ()):
        self.spec = spec
        self.family = family
        self.options = self.Options.model_validate(spec.options)
        self.prompt: PromptTemplate | None = (
            load_prompt_for(spec.prompt, family, prompt_dirs) if spec.prompt else None
        )

    def sampling(self) -> dict[str, Any]:
        """The spec's sampling settings, a fresh dict per call (a request may override one)."""
        return dict(self._sampling)

    @functools.cached_property
    def _sampling(self) -> dict[str, Any]:  # dumped once: a stage sends a request or more per input
        return self.spec.sampling.model_dump()

    @functools.cached_property
    def audits_io(self) -> bool:
        """Whether its runs see the work through a `stage_io.WorkAudit` (read once: a stage runs per input)."""
        from got_data.annotate.stage_io import audit_enabled

        return audit_enabled()

    @classmethod
    def prompt_sections(cls, options: Any) -> tuple[str, ...]:
        """The prompt sections this stage renders with these options, checked in its prompt and every
        family variant when the spec loads (so a missing one is an error before work starts); ()
        checks none."""
        return ()

    @abstractmethod
    async def run(self, work: Any, models: Any) -> None:
        """Read `reads` from work, call models, set `writes`; raise StageReject to drop the input."""


def _audited(run: Any) -> Any:
    """`run`, seeing the work item through an audit when `GOT_DATA_AUDIT_STAGE_IO` is set (tests set
    it): touching a field the stage does not declare raises StageContractError after the stage."""

    @functools.wraps(run)
    async def audited_run(self: Stage, work: Any, models: Any) -> None:
        if not self.audits_io:
            await run(self, work, models)
            return
        from got_data.annotate.stage_io import WorkAudit

        if isinstance(work, WorkAudit.View):
            await run(self, work, models)
            return
        audit = WorkAudit(work)
        try:
            await run(self, audit.view(), models)
        finally:
            audit.check(self)

    return audited_run


def load_prompt_for(name: str, family: str | None, prompt_dirs: Sequence[Path] = ()) -> PromptTemplate:
    """The family-specific variant `stem.<family>.txt` when it exists, else the stage's template."""
    if family:
        stem, _, ext = name.rpartition(".")
        try:
            return load_prompt(f"{stem}.{family}.{ext}", prompt_dirs)
        except SpecError:
            pass  # no variant for this family: the common template serves
    return load_prompt(name, prompt_dirs)


def stage_module_names(extra: Iterable[str] = ()) -> list[str]:
    """The built-in stages package, the modules in `GOT_DATA_STAGE_MODULES` (comma-separated), then `extra`."""
    from_env = [m.strip() for m in os.environ.get(STAGE_MODULES_ENV, "").split(",") if m.strip()]
    return list(dict.fromkeys([BUILTIN_STAGES_PACKAGE, *from_env, *extra]))


def stage_classes(extra_modules: Iterable[str] = ()) -> dict[str, type[Stage]]:
    """Every registered stage by name, after importing the stage modules (importing registers them)."""
    for module in stage_module_names(extra_modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpecError(f"stage module {module!r} cannot be imported ({exc}); "
                            f"check {STAGE_MODULES_ENV} / --stages-module and PYTHONPATH") from exc
    return STAGE_CLASSES
