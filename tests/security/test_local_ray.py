"""A plain local run (no --ray-address) listens on loopback only (Ray's servers and vLLM's sockets), with
Ray's token authentication on; got-data refuses to start a local Ray with it switched off."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("local_run_sockets.py")


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # '::ffff:127.0.0.1' is loopback too
    return (mapped or address).is_loopback


def test_is_loopback_reads_both_families():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.2")


@pytest.mark.engine
@pytest.mark.own_ray
def test_local_run_listens_on_loopback_only_with_token_auth_on(tiny_models):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_models.llm)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["answered"] == 1
    names = {s["name"] for s in summary["sockets"]}
    assert {"gcs_server", "raylet"} <= names, names  # the servers were seen, so the check looked at them
    exposed = [s for s in summary["sockets"] if not is_loopback(s["ip"])]
    assert not exposed, exposed
    assert summary["token_auth"] is True


@pytest.mark.parametrize("mode", ["disabled", "DISABLED", "off"])
def test_a_local_ray_is_never_started_with_token_auth_off(monkeypatch, mode):
    import ray

    from got_data.errors import LocalRayError
    from got_data.local_ray import start_local_ray

    def no_init(*args, **kwargs):
        raise AssertionError("ray.init must not be called")

    monkeypatch.setattr(ray, "init", no_init)
    monkeypatch.setenv("RAY_AUTH_MODE", mode)
    with pytest.raises(LocalRayError, match=f"RAY_AUTH_MODE={mode} would start the local Ray without token"):
        start_local_ray(1, 100 * 1024**2)


@pytest.mark.own_ray
def test_a_local_run_starts_its_own_ray_whatever_cluster_the_environment_names():
    """RAY_ADDRESS (or a stale /tmp/ray/ray_current_cluster) must not make a local run join another cluster."""
    code = ("import ray; from got_data.local_ray import start_local_ray; start_local_ray(1, 100 * 1024**2); "
            "print(ray.get_runtime_context().gcs_address); ray.shutdown()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_ADDRESS": "192.0.2.2:9"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert is_loopback(proc.stdout.strip().splitlines()[-1].rsplit(":", 1)[0])
