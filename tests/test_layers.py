"""Layers only look down: the import rules of docs/ARCHITECTURE.md, checked on the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "got_data"

# package (relative to got_data/) -> modules it must never import
FORBIDDEN = {
    "records": ("got_data.annotate", "got_data.engines", "got_data.ingest", "got_data.shards", "got_data.train",
                "got_data.world", "got_data.eval", "got_data.cli"),
    "shards": ("got_data.annotate", "got_data.engines", "got_data.ingest", "got_data.train", "got_data.world",
               "got_data.eval", "got_data.cli"),
    "families.py": ("got_data.",),
    "world": ("got_data.annotate.stages", "got_data.annotate.crops", "got_data.cli", "got_data.eval"),
    "eval": ("got_data.annotate.stages", "got_data.cli"),
    # only the CLI package holds commands: no other layer imports it
    "annotate": ("got_data.cli",), "engines": ("got_data.cli",), "ingest": ("got_data.cli",),
    "train": ("got_data.cli",), "report": ("got_data.cli",),
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    target = PACKAGE / layer
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    assert files, layer
    breaches = [f"{path.relative_to(PACKAGE)} imports {name}" for path in files for name in imported_modules(path)
                if any(name == banned.rstrip(".") or name.startswith(banned.rstrip(".") + ".") or
                       (banned.endswith(".") and name.startswith(banned)) for banned in FORBIDDEN[layer])]
    assert not breaches, breaches
