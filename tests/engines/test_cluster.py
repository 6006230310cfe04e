"""A pool spread over a simulated two-node Ray cluster (own Ray instance, in a subprocess): both nodes
serve, and an engine lost on the node without the driver is replaced there while requests continue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.own_ray]

SCRIPT = Path(__file__).with_name("two_node_cluster.py")


def test_pool_spans_two_nodes_and_replaces_an_engine_lost_on_the_other_node(tiny_models):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_models.llm)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cluster_nodes"] == 2
    assert len(set(summary["actor_nodes"])) == 2  # one engine on each node
    assert summary["ids"] == [f"c{i}" for i in range(64)] and summary["ok"] == 64
    assert all(n > 0 for n in summary["completed_per_actor"])  # both engines served
    # the engine killed on the other node: every later request answered, and the pool replaced it there
    assert summary["after_kill_ok"] == 64
    assert summary["live_after_replacement"] == [True, True]
    assert sorted(summary["nodes_after_replacement"]) == sorted(summary["actor_nodes"])
    assert sum(summary["restarts"]) == 1
