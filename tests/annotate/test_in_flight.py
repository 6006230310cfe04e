"""The in-flight bounds when they are `auto`: Little's law over the pools and CPUs found (pure logic;
the real pools' capacity and a run's recorded bound are checked in test_t2i_e2e.py)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from got_data.annotate.in_flight import (
    DECODE_DEPTH,
    MAX_IMAGES_IN_FLIGHT,
    MIN_IMAGES_IN_FLIGHT,
    Slots,
    images_in_flight,
    parse_setting,
)
from got_data.cli import app
from got_data.engines.config import CPU_ENGINE_IN_FLIGHT, GPU_ENGINE_IN_FLIGHT, PoolConfig
from got_data.engines.errors import PoolConfigError
from got_data.errors import InputError


class SizedPool:
    """Stands in for a ModelPool's one sizing call: `request_capacity()`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity

    def request_capacity(self) -> int:
        return self.capacity


class InstantPool:
    """A pool that answers at once (the world oracle's shape): it has no capacity to fill."""


def test_auto_covers_every_engine_slot_and_a_decode_queue_per_cpu():
    pools = {"vlm": SizedPool(2 * 256), "llm": SizedPool(256)}
    assert images_in_flight("auto", pools, cpus=8) == 3 * 256 + 8 * DECODE_DEPTH
    shared = SizedPool(256)
    assert images_in_flight("auto", {"vlm": shared, "llm": shared}, cpus=8) == 256 + 8 * DECODE_DEPTH  # one pool
    assert images_in_flight("auto", {"vlm": InstantPool(), "llm": InstantPool()}, cpus=4) == 4 * DECODE_DEPTH


def test_auto_stays_within_its_floor_and_ceiling_and_a_number_is_taken_as_given():
    assert images_in_flight("auto", {"vlm": InstantPool()}, cpus=0.25) == MIN_IMAGES_IN_FLIGHT
    assert images_in_flight("auto", {"vlm": SizedPool(100 * 1024)}, cpus=64) == MAX_IMAGES_IN_FLIGHT
    assert images_in_flight(7, {"vlm": SizedPool(1024)}, cpus=64) == 7
    assert images_in_flight("12", {}, cpus=1) == 12


@pytest.mark.parametrize("value", ["0", "-3", "lots", "1.5", 0])
def test_a_bad_setting_is_an_input_error(value):
    with pytest.raises(InputError, match="'auto' or a whole number >= 1"):
        parse_setting(value)


def test_the_cli_refuses_a_bad_bound_in_one_line_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["annotate", "t2i", str(tmp_path / "missing"), "--out", str(tmp_path / "out"),
                                      "--max-images-in-flight", "lots"])
    assert result.exit_code == 2 and "--max-images-in-flight must be 'auto'" in result.output
    assert not (tmp_path / "out").exists()


def test_an_engine_keeps_its_batch_in_flight():
    config = PoolConfig(role="llm", model="m")
    assert config.max_in_flight_per_actor == "auto"
    assert (config.in_flight_per_actor(on_gpu=True), config.in_flight_per_actor(on_gpu=False)) == (
        GPU_ENGINE_IN_FLIGHT, CPU_ENGINE_IN_FLIGHT)
    assert PoolConfig(role="llm", model="m", engine_kwargs={"max_num_seqs": 512}).in_flight_per_actor(True) == 512
    assert PoolConfig(role="llm", model="m", max_in_flight_per_actor=9).in_flight_per_actor(True) == 9


@pytest.mark.parametrize("bad", [0, "many"])
def test_a_bad_engine_bound_is_refused(bad, tiny_models):
    with pytest.raises(PoolConfigError, match="max_in_flight_per_actor must be 'auto' or >= 1"):
        PoolConfig(role="llm", model=str(tiny_models.llm), max_in_flight_per_actor=bad).resolved()


def test_a_full_bound_admits_the_next_inputs_a_group_at_a_time():
    async def scenario() -> None:
        slots = Slots(4, group=3)
        for _ in range(4):
            await slots.take()
        waiting = asyncio.create_task(slots.take())
        await asyncio.sleep(0.01)  # it waits on a full bound
        slots.give()
        slots.give()
        await asyncio.sleep(0.01)
        assert not waiting.done()  # two free: fewer than a group
        slots.give()
        await asyncio.sleep(0.01)
        assert waiting.done() and slots.free == 2
        await slots.take()
        await slots.take()  # the rest of the group comes without waiting
        assert slots.free == 0

    asyncio.run(scenario())
    assert Slots(1).group == 1 and Slots(5, group=8).group == 5  # a small bound is never starved
