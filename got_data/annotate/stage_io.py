"""The stages' `reads` and `writes`, checked: against each other when a pipeline is built (a stage may
only read what the input or an earlier stage writes), and at run time when `GOT_DATA_AUDIT_STAGE_IO`
is set (the tests set it): the stage then sees the work item through a view that notes every field it
touches, and touching one it does not declare raises StageContractError."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from got_data.errors import SpecError, StageContractError

if TYPE_CHECKING:
    from got_data.annotate.stage import Stage
    from got_data.annotate.work_items import Work

AUDIT_ENV = "GOT_DATA_AUDIT_STAGE_IO"
ACCUMULATORS = frozenset({"dropped", "dropped_boxes"})  # lists stages append to: touching one is a write


def audit_enabled() -> bool:
    return os.environ.get(AUDIT_ENV, "") not in ("", "0")


def known_fields(work_kind: type[Work]) -> set[str]:
    """Every name a stage may declare for this work kind: fields, properties, `steps.X` of nested items."""
    names = {f.name for f in dataclasses.fields(work_kind)} | set(work_kind.provided) | set(work_kind.derived)
    for list_field, item_type in work_kind.nested.items():
        names |= {f"{list_field}.{f.name}" for f in dataclasses.fields(item_type)}
    return names


def check_chain(pipeline: str, stages: Sequence[tuple[str, type[Stage]]], work_kind: type[Work]) -> None:
    """SpecError unless each stage reads only what the input or an earlier stage writes, names only
    fields the work kind has, and some stage writes the record."""
    known = known_fields(work_kind)
    available = set(work_kind.provided) | set(work_kind.common) | ACCUMULATORS
    for name, cls in stages:
        for declared in (*cls.reads, *cls.optional_reads, *cls.writes):
            if declared not in known:
                raise SpecError(f"pipeline {pipeline!r}: stage {name!r} declares {declared!r}, which a "
                                f"{work_kind.__name__} does not have; fields: {', '.join(sorted(known))}")
        missing = [field for field in cls.reads if field not in available]
        if missing:
            raise SpecError(
                f"pipeline {pipeline!r}: stage {name!r} reads {', '.join(map(repr, missing))}, which neither the "
                f"input nor an earlier stage writes (available here: {', '.join(sorted(available - work_kind.common))})")
        available |= set(cls.writes)
    if "record" not in available:
        raise SpecError(f"pipeline {pipeline!r}: no stage writes the record; end the stages with an assembly stage")


class WorkAudit:
    """Notes which fields of one work item one stage touches, through `view()`."""

    def __init__(self, work: Any):
        self.work = work
        self.kind = type(work)
        self.read: set[str] = set()
        self.written: set[str] = set()

    class View:
        """The work item (or one of its nested items) as the audited stage sees it."""

        __slots__ = ("_target", "_audit", "_prefix")

        def __init__(self, target: Any, audit: WorkAudit, prefix: str = ""):
            object.__setattr__(self, "_target", target)
            object.__setattr__(self, "_audit", audit)
            object.__setattr__(self, "_prefix", prefix)

        def __getattr__(self, name: str) -> Any:
            value = getattr(self._target, name)
            path = self._prefix + name
            if not name.startswith("__"):
                self._audit.read.add(path)
            if path in self._audit.kind.nested:
                return [WorkAudit.View(item, self._audit, f"{path}.") for item in value]
            return value

        def __setattr__(self, name: str, value: Any) -> None:
            self._audit.written.add(self._prefix + name)
            setattr(self._target, name, value)

    def view(self) -> WorkAudit.View:
        return WorkAudit.View(self.work, self)

    def undeclared(self, stage: Any) -> list[str]:
        """What the stage touched without declaring it: `read X` / `wrote X`."""
        readable = set(stage.reads) | set(stage.optional_reads) | set(stage.writes)
        found = []
        for path in sorted(self.read):
            if path in self.kind.common or path in self.kind.nested:
                continue
            if path in ACCUMULATORS:
                if path not in stage.writes:
                    found.append(f"wrote {path}")
                continue
            found += [f"read {dep}" for dep in self.kind.derived.get(path, (path,)) if dep not in readable]
        found += [f"wrote {path}" for path in sorted(self.written) if path not in stage.writes]
        return found

    def check(self, stage: Any) -> None:
        problems = self.undeclared(stage)
        if problems:
            raise StageContractError(f"stage {stage.name!r} touched fields it does not declare: {'; '.join(problems)} "
                                     f"(declare them in its reads/writes)")
