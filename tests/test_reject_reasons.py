"""docs/REJECTS.md lists every reject reason the code can write, with its stage, and no other.

The reasons are found in the source, not in a hand-kept list: every `StageReject(stage, reason, ...)`,
`ImageRejected(reason, ...)` / `ImageReadError(reason, ...)`, the runner's `_reject(item, key, stage,
reason, ...)`, every `*_REASONS` tuple, every `(REASON, detail)` problem pair in the ingest
package whose first element is a module constant, and what a `*_reason` function returns. A new reason without a row fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "got_data"
TABLE = ROOT / "docs" / "REJECTS.md"
_SNAKE = re.compile(r"^[a-z]+(_[a-z0-9]+)*$")
_ROW = re.compile(r"^\|\s*`(?P<reason>[a-z0-9_]+)`\s*\|(?P<stages>[^|]*)\|(?P<todo>[^|]*)\|\s*$")


def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))}


def _constants(modules: dict[Path, ast.Module]) -> dict[str, str]:
    """Module-level UPPER_CASE string constants of the whole package, by name."""
    found: dict[str, str] = {}
    for tree in modules.values():
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.isupper():
                        found[target.id] = node.value.value
    return found


def _stage_names(tree: ast.Module) -> dict[int, str]:
    """line -> the `name` class attribute of the class that line sits in (what `self.name` is)."""
    lines: dict[int, str] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "name" for t in stmt.targets)
                    and isinstance(stmt.value, ast.Constant)):
                for line in range(cls.lineno, (cls.end_lineno or cls.lineno) + 1):
                    lines[line] = stmt.value.value
    return lines


def _callee(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def reasons_in_code() -> dict[str, set[str]]:
    """reason -> the stages it is written at (empty when the code does not say it literally)."""
    modules = _modules()
    constants = _constants(modules)

    def value(node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found: dict[str, set[str]] = {}

    def add(node: ast.expr, stage: str | None = None) -> None:
        """The reason(s) `node` can be: a constant, each constant of `x or "fallback"`, each branch of an if."""
        if isinstance(node, ast.IfExp):
            add(node.body, stage)
            add(node.orelse, stage)
            return
        for option in node.values if isinstance(node, ast.BoolOp) else [node]:
            reason = value(option)
            if reason is not None and _SNAKE.match(reason):
                stages = found.setdefault(reason, set())
                if stage:
                    stages.add(stage)

    for path, tree in modules.items():
        in_class = _stage_names(tree)
        ingest = "ingest" in path.relative_to(PACKAGE).parts
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                args, name = node.args, _callee(node)
                if name == "StageReject" and len(args) >= 2:
                    first = args[0]
                    is_self_name = isinstance(first, ast.Attribute) and first.attr == "name"
                    stage = in_class.get(node.lineno) if is_self_name else value(first)
                    add(args[1], stage)
                elif name in ("ImageRejected", "ImageReadError") and args:
                    add(args[0], "decode")  # both are raised while a decode task reads the bytes
                elif name == "_reject" and len(args) >= 4:
                    add(args[3], value(args[2]))
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_REASONS") for t in node.targets):
                for element in getattr(node.value, "elts", []):
                    add(element)
            elif isinstance(node, ast.FunctionDef) and node.name.endswith("_reason"):
                for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None):
                    add(ret.value)
            elif ingest and isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Name):
                add(node.elts[0])
    return found


def table_rows() -> dict[str, set[str]]:
    rows: dict[str, set[str]] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            assert match["reason"] not in rows, f"{match['reason']} has two rows"
            assert match["todo"].strip(), f"{match['reason']}: the table must say what to do"
            rows[match["reason"]] = {s.strip(" `") for s in match["stages"].split(",") if s.strip()}
    return rows


def test_the_scan_finds_reasons_of_every_origin():
    found = reasons_in_code()
    # one of each origin: a stage's own name, a literal stage, the runner, ingest problems, image bytes
    assert found["no_entities"] == {"extract_entities"}
    assert "validate" in found["schema"]
    assert found["invalid_sample"] == {"write"}
    assert "missing_file" in found and "empty_instruction" in found and "truncated_image" in found


def test_every_reason_in_the_code_has_a_row_with_its_stages():
    rows = table_rows()
    found = reasons_in_code()
    missing = sorted(set(found) - set(rows))
    assert not missing, f"reasons without a row in {TABLE.name}: {missing}"
    for reason, stages in found.items():
        assert stages <= rows[reason], f"{reason}: written at {sorted(stages)}, the table says {sorted(rows[reason])}"


def test_every_row_names_a_reason_the_code_writes():
    stale = sorted(set(table_rows()) - set(reasons_in_code()))
    assert not stale, f"rows in {TABLE.name} for reasons no code writes: {stale}"


def test_readme_links_the_table():
    assert "docs/REJECTS.md" in (ROOT / "README.md").read_text(encoding="utf-8")
