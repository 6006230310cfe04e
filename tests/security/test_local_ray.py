"""A plain local run (no --ray-address) listens on loopback only: Ray's servers and vLLM's sockets."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.own_ray]

SCRIPT = Path(__file__).with_name("local_run_sockets.py")


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # '::ffff:127.0.0.1' is loopback too
    return (mapped or address).is_loopback


def test_is_loopback_reads_both_families():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.2")


def test_local_run_listens_on_loopback_only(tiny_models):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_models.llm)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["answered"] == 1
    names = {s["name"] for s in summary["sockets"]}
    assert {"gcs_server", "raylet"} <= names, names  # the servers were seen, so the check looked at them
    exposed = [s for s in summary["sockets"] if not is_loopback(s["ip"])]
    assert not exposed, exposed
