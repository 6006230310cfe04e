"""Locate the pipeline specs and prompt templates, in a checkout or in an installed wheel.

They live at the repository's top level (`pipelines/`, `prompts/`) where users edit them; the wheel
ships them as the `got_data.pipelines` and `got_data.prompts` packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from got_data.errors import SpecError

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """The folder holding the bundled `pipelines` or `prompts` files."""
    if name not in ("pipelines", "prompts"):
        raise SpecError(f"unknown resource folder {name!r}")
    checkout = _CHECKOUT_ROOT / name
    if checkout.is_dir() and (_CHECKOUT_ROOT / "pyproject.toml").is_file():
        return checkout
    spec = importlib.util.find_spec(f"got_data.{name}")
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(f"the installed got-data package has no {name}/ folder; reinstall it")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_resource(name: str, path: str | Path) -> Path:
    """A user path as given if it exists, else the bundled file of that name in the `name` folder."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    bundled = resource_dir(name) / candidate.name
    if bundled.is_file():
        return bundled
    raise SpecError(f"{name} file {path!s} not found (looked at {candidate} and {bundled})")
