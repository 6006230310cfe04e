"""The wheel must carry every subpackage and the top-level pipelines/ and prompts/ folders."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "got_data").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert {"got_data.pipelines", "got_data.prompts"} <= listed


def test_resources_resolve_from_the_checkout():
    from got_data.resources import resource_dir

    assert (resource_dir("pipelines") / "t2i.yaml").is_file()
    assert (resource_dir("prompts") / "recaption.txt").is_file()
