"""A pool spread over a simulated two-node Ray cluster (own Ray instance, in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.own_ray]

SCRIPT = Path(__file__).with_name("two_node_cluster.py")


def test_pool_spans_two_nodes(tiny_models):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_models.llm)], capture_output=True,
                          text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cluster_nodes"] == 2
    assert len(set(summary["actor_nodes"])) == 2  # one engine on each node
    assert summary["ids"] == [f"c{i}" for i in range(64)] and summary["ok"] == 64
    assert all(n > 0 for n in summary["completed_per_actor"])  # both engines served
