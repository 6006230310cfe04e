"""Fixtures for the shard tests: the committed sample shards, their generator, and record variants."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from got_data.records import make_key

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SHARDS_DIR = DATA_DIR / "shards"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("got_test_shard_generator", DATA_DIR / "make_test_shards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def generator_path() -> Path:
    return DATA_DIR / "make_test_shards.py"


@pytest.fixture(scope="session")
def shard_generator() -> ModuleType:
    return _load_generator()


@pytest.fixture(scope="session")
def shards_dir() -> Path:
    return SHARDS_DIR


@pytest.fixture(scope="session")
def valid_samples(shard_generator: ModuleType) -> dict[str, list[tuple[Any, dict[str, bytes]]]]:
    """Hand-written records (t2i, edit, multiturn) with their images, as the generator builds them."""
    return shard_generator.valid_samples()


@pytest.fixture(scope="session")
def all_samples(valid_samples: dict[str, list[tuple[Any, dict[str, bytes]]]]) -> list[tuple[Any, dict[str, bytes]]]:
    return [sample for kind in ("t2i", "edit", "multiturn") for sample in valid_samples[kind]]


@pytest.fixture(scope="session")
def make_variant(all_samples: list[tuple[Any, dict[str, bytes]]]) -> Callable[[int], tuple[Any, dict[str, bytes]]]:
    """Sample number i: one of the hand-written samples under a fresh key, for tests that need many."""

    def variant(i: int) -> tuple[Any, dict[str, bytes]]:
        record, images = all_samples[i % len(all_samples)]
        key = make_key(record.kind, record.source.dataset, f"{record.source.input_ref}#{i}")
        return record.model_copy(update={"key": key}), images

    return variant


@pytest.fixture(scope="session")
def shards_ray(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Ray for the interop test: the suite's `ray_session` when tests/conftest.py has one, else a local one."""
    try:
        yield request.getfixturevalue("ray_session")
        return
    except pytest.FixtureLookupError:
        pass
    import ray

    if ray.is_initialized():
        yield ray
        return
    from got_data.local_ray import start_local_ray

    start_local_ray(1, 200 * 1024 * 1024)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def loader_outputs(shards_ray: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real annotate outputs of each record kind from mixed inputs: world scenes, some stored as JPEG,
    some as PNG; T2I images with and without a caption; multi-turn sequences of one to three turns.
    The world oracle answers the stages (Ray decode tasks, real runner and writer, no vLLM)."""
    from tests.shards.mixed_inputs import annotate_mixed

    root = tmp_path_factory.mktemp("loader-outputs")
    return {kind: annotate_mixed(root / kind, kind) for kind in ("t2i", "edit", "multiturn")}


@pytest.fixture(scope="session")
def demo_output(shards_ray: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `got-data demo` writes: its world sets annotated by the world's trained models on vLLM
    (OUT/t2i, OUT/edit, OUT/multiturn). Slow tier: the demo takes minutes on 2 cores."""
    from rich.console import Console

    from got_data.cli.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, Console(quiet=True))
    return out
