"""Node-affine routing: which engine a request goes to, given where the engines run (pure logic:
the pool's slots as it keeps them, with the node ids their actors report on start)."""

from __future__ import annotations

import asyncio

from got_data.engines.pool import _Slot, choose_slot


def _slot(index: int, node: str, places: int = 2, in_flight: int = 0) -> _Slot:
    slot = _Slot(index=index, semaphore=asyncio.Semaphore(places - in_flight), in_flight=in_flight,
                 info={"node_id": node, "pid": 100 + index})
    return slot


def test_an_idle_engine_on_the_callers_node_wins_over_a_less_busy_one_elsewhere():
    local, remote = _slot(0, "node-a", places=4, in_flight=3), _slot(1, "node-b")
    assert choose_slot([remote, local], "node-a") is local


def test_the_least_busy_of_several_local_engines():
    busy, idle, remote = _slot(0, "node-a", in_flight=1), _slot(1, "node-a"), _slot(2, "node-b")
    assert choose_slot([busy, remote, idle], "node-a") is idle


def test_a_full_node_sends_the_request_to_a_free_engine_elsewhere():
    full, remote = _slot(0, "node-a", in_flight=2), _slot(1, "node-b", in_flight=1)
    assert choose_slot([full, remote], "node-a") is remote


def test_when_every_engine_is_full_the_request_waits_on_its_own_node():
    local, remote = _slot(0, "node-a", in_flight=2), _slot(1, "node-b", places=3, in_flight=3)
    assert choose_slot([remote, local], "node-a") is local


def test_a_node_without_engines_takes_the_least_busy_anywhere():
    a, b = _slot(0, "node-a", in_flight=1), _slot(1, "node-b")
    assert choose_slot([a, b], "node-c") is b
    assert choose_slot([a, b], None) is b
