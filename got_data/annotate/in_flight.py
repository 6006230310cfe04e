"""How many inputs the runner keeps in flight when `--max-images-in-flight` is `auto`.

Little's law: inputs in flight = records/s x seconds per record. An input holds its slot from decode
to the shard writer, and spends that time either waiting on a model pool or on a CPU (decode, CPU
stages). To keep every engine busy, each request an engine can run at once (its pool's
`request_capacity()`: engines x requests per engine) needs an input waiting on it; to keep the CPUs
busy, each CPU needs a queue of inputs to decode (DECODE_DEPTH). So the bound is the sum, counted
once per pool (one pool may serve two roles), kept between MIN_ and MAX_IMAGES_IN_FLIGHT: small on a
CPU machine with tiny engines, large on GPUs. Memory grows with it (each input in flight holds its
image bytes and decoded copies), which is what MAX_IMAGES_IN_FLIGHT caps.

DECODE_DEPTH fills every decode task a CPU runs at once (1 / DECODE_TASK_CPUS of them) with a whole
group of images (DECODE_GROUP_SIZE), twice over: one group decoding while the next waits its turn,
and the inputs past decode queue for the CPU stages. With instant answers (the world oracle) an
input's time in flight is exactly that decode and queueing; at 16 per CPU (half a group per task)
the bound, not the CPUs, set the pace (`bench/driver_ceiling.py`, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from got_data.annotate.decode import DECODE_GROUP_SIZE, DECODE_TASK_CPUS
from got_data.errors import InputError

AUTO = "auto"
DECODE_DEPTH = 2 * DECODE_GROUP_SIZE * round(1 / DECODE_TASK_CPUS)  # inputs per CPU of the cluster: 64
MIN_IMAGES_IN_FLIGHT = 32
MAX_IMAGES_IN_FLIGHT = 4096


def pool_capacity(pool: Any) -> int:
    """Requests a pool serves at once; 0 for a pool that answers without waiting (the world oracle,
    a replay), on which no input needs to wait."""
    capacity = getattr(pool, "request_capacity", None)
    return int(capacity()) if capacity is not None else 0


def cluster_cpus() -> float:
    """CPUs of the Ray cluster the decode tasks run on (this machine's when Ray is not started)."""
    import ray

    if ray.is_initialized():
        return float(ray.cluster_resources().get("CPU", 1))
    return float(os.cpu_count() or 1)


def parse_auto_or_count(value: int | str, option: str) -> int | str:
    """`auto` or a whole number >= 1 (as typed on the command line for `option`); InputError otherwise."""
    if value == AUTO:
        return AUTO
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(f"{option} must be 'auto' or a whole number >= 1, got {value!r}")
    return number


def parse_setting(value: int | str) -> int | str:
    """The `--max-images-in-flight` setting: `auto` or a whole number >= 1."""
    return parse_auto_or_count(value, "--max-images-in-flight")


def images_in_flight(setting: int | str, pools: dict[str, Any], cpus: float, annotators: int = 1) -> int:
    """The bound for `setting` (a number, or "auto": Little's law over the pools and CPUs found) in
    one of `annotators` writers sharing those pools and CPUs: each takes its share of what `auto`
    comes to (a number given by hand is each writer's own bound)."""
    setting = parse_setting(setting)
    if isinstance(setting, int):
        return setting
    distinct = {id(pool): pool for pool in pools.values()}.values()
    wanted = sum(pool_capacity(pool) for pool in distinct) + int(cpus * DECODE_DEPTH)
    return max(MIN_IMAGES_IN_FLIGHT, min(MAX_IMAGES_IN_FLIGHT, wanted) // max(annotators, 1))


class Slots:
    """The run's in-flight bound, refilled a group at a time: once every slot is taken, the next input
    waits until `group` of them are free, so the inputs admitted together ask for decoding in one
    turn of the event loop and share one decode task (`DecodeGroups`). Admitted one by one as
    records finish, each task carried about two images, and a Ray task costs its submitter about a
    CPU-millisecond (docs/PERFORMANCE.md). At most `group - 1` slots stand empty meanwhile."""

    def __init__(self, bound: int, group: int = DECODE_GROUP_SIZE) -> None:
        self.free = bound
        self.group = max(1, min(group, bound))
        self._room = asyncio.Event()

    async def take(self) -> None:
        if self.free == 0:
            while self.free < self.group:
                self._room.clear()
                await self._room.wait()
        self.free -= 1

    def give(self) -> None:
        self.free += 1
        if self.free >= self.group:
            self._room.set()
