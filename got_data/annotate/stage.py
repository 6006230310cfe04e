"""What a stage is: a small class with a name, the model role it calls, what it reads and writes on
the work item, and an async `run`. The spec (`pipelines/*.yaml`) wires stages; the runner drives them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from got_data.errors import SpecError
from got_data.records import StageUsage
from got_data.spec import PromptTemplate, StageSpec, load_prompt


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


class Stage(ABC):
    """Base class. Subclasses set `name`, `role`, `reads`, `writes` and implement `run`."""

    name: ClassVar[str]
    role: ClassVar[str | None] = None
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: StageSpec, family: str | None = None):
        self.spec = spec
        self.family = family
        self.prompt: PromptTemplate | None = load_prompt_for(spec.prompt, family) if spec.prompt else None

    def option(self, key: str, default: Any) -> Any:
        return self.spec.options.get(key, default)

    def sampling(self) -> dict[str, Any]:
        return self.spec.sampling.model_dump()

    @abstractmethod
    async def run(self, work: Any, models: Any) -> None:
        """Read `reads` from work, call models, set `writes`; raise StageReject to drop the input."""


def load_prompt_for(name: str, family: str | None) -> PromptTemplate:
    """The family-specific variant `stem.<family>.txt` when it exists, else the stage's template."""
    if family:
        stem, _, ext = name.rpartition(".")
        try:
            return load_prompt(f"{stem}.{family}.{ext}")
        except SpecError:
            pass  # no variant for this family: the common template serves
    return load_prompt(name)
