"""Specs that extend specs: `extends: t2i.yaml` plus only what differs.

Merge rules (overlay onto base): maps merge key by key, recursively (the overlay's value wins); the
`stages` list is matched by stage `name`, each overlay entry merging into the base's stage of that
name (order and membership stay the base's; an unknown name is an error); any other list, and any
scalar, is replaced. The base is a path relative to the overlay's folder, or a bundled spec name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from got_data.errors import SpecError
from got_data.resources import resolve_resource

MAX_DEPTH = 8


def merge_maps(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if key == "stages" and isinstance(value, list) and isinstance(base.get(key), list):
            merged[key] = merge_stages(base[key], value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = merge_maps(base[key], value)
        else:
            merged[key] = value
    return merged


def merge_stages(base: list[Any], overlay: list[Any]) -> list[Any]:
    by_name = {stage.get("name"): n for n, stage in enumerate(base) if isinstance(stage, dict)}
    merged = list(base)
    for stage in overlay:
        name = stage.get("name") if isinstance(stage, dict) else None
        if name not in by_name:
            raise SpecError(f"an overlay's stage {name!r} is not a stage of the spec it extends "
                            f"({', '.join(map(str, by_name))}); overlays only change stages by name")
        merged[by_name[name]] = merge_maps(merged[by_name[name]], stage)
    return merged


def resolve_spec_path(path: str | Path, relative_to: Path | None = None) -> Path:
    """A spec file: relative to `relative_to` (the extending spec's folder) if there, else a user
    path, else a bundled spec (`t2i` or `t2i.yaml`)."""
    name = str(path) if str(path).endswith((".yaml", ".yml")) else f"{path}.yaml"
    if relative_to is not None and (relative_to / name).is_file():
        return relative_to / name
    return resolve_resource("pipelines", name)


def read_spec_tree(path: Path, depth: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """The spec at `path` with its `extends` chain merged in, and the files read (the spec first)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"pipeline spec {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"pipeline spec {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"pipeline spec {path} must be a YAML map (name, version, record_kind, models, stages)")
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw, [path]
    if depth >= MAX_DEPTH:
        raise SpecError(f"pipeline spec {path}: `extends` goes deeper than {MAX_DEPTH} specs (a loop?)")
    base, files = read_spec_tree(resolve_spec_path(base_name, path.parent), depth + 1)
    return merge_maps(base, raw), [path, *files]
