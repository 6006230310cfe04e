"""Shared session fixtures: one Ray instance, the tiny models, one engine pool per role.

Engines take ~30 s each to start on CPU, so each pool starts once per session and every test
that needs it shares it. Tests marked `own_ray` start their own Ray instance (in a subprocess);
they are moved to the front of the run so they never overlap the session engines (this machine
takes at most two vLLM engines at once). Tests marked `world_models` come next: they serve the trained
world models under the same roles, and stop them before the tiny pools start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _key, _value in {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "GOT_DATA_AUDIT_STAGE_IO": "1",  # a stage touching a work field it does not declare fails the test
}.items():
    os.environ.setdefault(_key, _value)

# The test S3 server's endpoint and credentials are announced before anything starts, so every Ray
# worker of the session (decode tasks read input objects) inherits them; the server starts on first use.
_S3_PORT = None
if "AWS_ENDPOINT_URL" not in os.environ:
    from got_data.s3_server import ACCESS_KEY, SECRET_KEY, free_ports

    _S3_PORT = free_ports(1)[0]
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{_S3_PORT}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                       "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"})

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_MODELS_DIR = REPO_ROOT / ".cache" / "tiny-models"  # gitignored; reused across sessions

# Small images keep prompts short: at most 16 merged vision tokens per image.
TEST_MIN_PIXELS = 28 * 28 * 4
TEST_MAX_PIXELS = 28 * 28 * 16
TEST_MAX_IN_FLIGHT = 32


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_ray: starts its own Ray instance (runs before session engines)")
    config.addinivalue_line("markers", "world_models: serves the trained world models (runs before the tiny pools start)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("own_ray"):
            return 0
        return 1 if item.get_closest_marker("world_models") else 2

    items.sort(key=order)  # stable sort


@pytest.fixture(scope="session")
def tiny_models():
    from got_data.engines.tiny_models import ensure_tiny_models

    return ensure_tiny_models(TINY_MODELS_DIR)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from got_data.local_ray import start_local_ray

    start_local_ray(3, 500 * 1024**2, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS) on loopback at the endpoint announced above; stopped by its pid."""
    from got_data.s3_server import start_s3_server

    if _S3_PORT is None:
        pytest.skip("AWS_ENDPOINT_URL was set outside the tests: not starting a local S3 server")
    server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"), s3_port=_S3_PORT)
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, request):
    """A fresh bucket per test: `s3://NAME`."""
    import re

    from got_data.uri import reset_filesystems

    reset_filesystems()
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:24].strip("-") + f"-{os.getpid() % 100000}"
    return s3_server.create_bucket(name)


def _pool(config):
    from got_data.engines.pool import ModelPool

    pool = ModelPool.start(config)
    yield pool
    pool.shutdown(force=True)


@pytest.fixture(scope="session")
def vlm_config(tiny_models):
    from got_data.engines.config import PoolConfig

    return PoolConfig(role="vlm", model=str(tiny_models.vlm), max_model_len=1024,
                      min_pixels=TEST_MIN_PIXELS, max_pixels=TEST_MAX_PIXELS,
                      max_in_flight_per_actor=TEST_MAX_IN_FLIGHT)


@pytest.fixture(scope="session")
def llm_config(tiny_models):
    from got_data.engines.config import PoolConfig

    return PoolConfig(role="llm", model=str(tiny_models.llm), max_model_len=1024,
                      max_in_flight_per_actor=TEST_MAX_IN_FLIGHT)


@pytest.fixture(scope="session")
def vlm_pool(ray_session, vlm_config):
    yield from _pool(vlm_config)


@pytest.fixture(scope="session")
def llm_pool(ray_session, llm_config):
    yield from _pool(llm_config)
