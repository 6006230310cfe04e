"""The README's loading snippets, run as written on real annotate outputs: one from mixed JPEG/PNG
inputs, and the demo's.

Each snippet must leave `record` (the first record it read, as a model or a dict) and `image` (a PIL
image or the image's bytes); the test checks both against what `iter_samples` reads."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from got_data.shards import iter_samples

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_DIR = "/data/got-t2i"
pytestmark = pytest.mark.engine


def loading_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Load the shards", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_shows_each_loader():
    joined = "\n".join(loading_snippets())
    for loader in ("iter_samples", "wds.WebDataset", "load_dataset", "wids.ShardListDataset", "read_webdataset"):
        assert loader in joined, f"the README's loading section lacks {loader}"


# The two outputs: mixed JPEG/PNG inputs with and without captions (oracle-answered, default
# tier), and the demo's own (its world models on vLLM: slow tier).
OUTPUTS = ["mixed", pytest.param("demo", marks=[pytest.mark.slow, pytest.mark.world_models])]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("snippet", loading_snippets(), ids=lambda s: s.strip().splitlines()[0][:40])
def test_a_readme_snippet_loads_the_output(request, output, snippet, tmp_path, monkeypatch):
    import datasets.config

    out = request.getfixturevalue("loader_outputs")["t2i"] if output == "mixed" else request.getfixturevalue("demo_output") / "t2i"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")  # not the user's cache
    monkeypatch.setenv("WIDS_CACHE", str(tmp_path / "wids"))
    assert EXAMPLE_DIR in snippet
    namespace: dict = {}
    exec(compile(snippet.replace(EXAMPLE_DIR, str(out)), "README.md", "exec"), namespace)  # noqa: S102
    record, image = namespace["record"], namespace["image"]
    key = record["key"] if isinstance(record, dict) else record.key
    samples = {s.key: s for s in iter_samples(out)}
    assert key in samples
    stored = samples[key].record.images[0]
    picture = image if isinstance(image, Image.Image) else Image.open(io.BytesIO(image))
    assert picture.size == (stored.width, stored.height)
