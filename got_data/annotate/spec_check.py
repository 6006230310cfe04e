"""A pipeline spec checked against the stages it names, without Ray or a model: each stage exists,
its role matches the class, its options fit the class's Options model, its prompt (and any model
family variant of it) loads, and the reads/writes chain holds. Fills in the role and prompt a stage
implies, so a spec entry can be just `- name: ground`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from got_data.annotate.stage import Stage, StageOptions, stage_classes
from got_data.annotate.stage_io import check_chain
from got_data.annotate.work_items import WORK_KINDS
from got_data.errors import SpecError
from got_data.resources import resource_dir
from got_data.spec import PipelineSpec, StageSpec, load_prompt


def check_spec(spec: PipelineSpec, stage_modules: Iterable[str] = ()) -> list[type[Stage]]:
    """The stage classes of the spec, in order; SpecError (one line) on the first problem."""
    registry = stage_classes(stage_modules)
    names = [s.name for s in spec.stages]
    if len(set(names)) != len(names):
        raise SpecError(f"stage names repeat: {', '.join(names)}; each stage runs once")
    classes = []
    for stage_spec in spec.stages:
        cls = registry.get(stage_spec.name)
        if cls is None:
            raise SpecError(f"no stage called {stage_spec.name!r}; known: {', '.join(sorted(registry))} "
                            f"(a stage of your own: name its module in GOT_DATA_STAGE_MODULES or --stages-module)")
        _fill_role_and_prompt(stage_spec, cls)
        options = stage_options(cls, stage_spec)
        if stage_spec.prompt is not None:
            templates = [load_prompt(stage_spec.prompt, spec.prompt_dirs)]
            templates += [load_prompt(v.name, [v.parent]) for v in family_variants(stage_spec.prompt, spec.prompt_dirs)]
            for template in templates:
                for section in cls.prompt_sections(options):
                    if section not in template.sections:
                        raise SpecError(f"stage {stage_spec.name!r}: prompt {template.path.name} has no [{section}] "
                                        f"section, which the stage's options ask for")
        classes.append(cls)
    check_chain(spec.name, [(s.name, cls) for s, cls in zip(spec.stages, classes)], WORK_KINDS[spec.record_kind])
    return classes


def family_variants(prompt: str, prompt_dirs: Iterable[Path]) -> list[Path]:
    """The model-family variants (`stem.<family>.txt`) of a prompt beside the spec or bundled."""
    stem, _, ext = prompt.rpartition(".")
    folders = [*prompt_dirs, resource_dir("prompts")]
    return sorted(p for folder in folders if folder.is_dir() for p in folder.glob(f"{stem}.*.{ext}"))


def _fill_role_and_prompt(stage_spec: StageSpec, cls: type[Stage]) -> None:
    if stage_spec.role is None:
        stage_spec.role = cls.role  # type: ignore[assignment]
    elif stage_spec.role != cls.role:
        raise SpecError(f"stage {stage_spec.name!r} calls the {cls.role!r} model, the spec says {stage_spec.role!r}")
    if cls.role is None and stage_spec.prompt is not None:
        raise SpecError(f"stage {stage_spec.name!r} calls no model: remove its prompt {stage_spec.prompt!r}")
    if cls.role is not None and stage_spec.prompt is None:
        stage_spec.prompt = f"{stage_spec.name}.txt"


def stage_options(cls: type[Stage], stage_spec: StageSpec) -> StageOptions:
    """The spec's options for the stage, checked: a SpecError names the stage, the key and the keys it takes."""
    try:
        return cls.Options.model_validate(stage_spec.options)
    except ValidationError as exc:
        keys = ", ".join(cls.Options.model_fields) or "none"
        problems = []
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown option {key!r} (its options: {keys})")
            else:
                problems.append(f"option {key!r}: {error['msg']}")
        raise SpecError(f"stage {stage_spec.name!r}: {'; '.join(problems)}") from exc


def effective_spec(spec: PipelineSpec) -> dict:
    """The checked spec as plain data with every stage's options complete (defaults filled in): what
    runs, however the spec was written (full, or as an overlay of another)."""
    classes = check_spec(spec)
    data = spec.model_dump()
    for stage, cls, stage_spec in zip(data["stages"], classes, spec.stages):
        stage["options"] = stage_options(cls, stage_spec).model_dump()
    return data
