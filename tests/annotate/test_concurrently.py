"""gather_all: asyncio.gather's results and errors, a lone awaitable awaited in place."""

from __future__ import annotations

import asyncio

import pytest

from got_data.annotate.concurrently import gather_all


async def _later(value: int, delay: float) -> int:
    await asyncio.sleep(delay)
    return value


def test_results_come_in_the_order_asked_not_the_order_finished():
    assert asyncio.run(gather_all(_later(n, 0.03 - n * 0.01) for n in range(3))) == [0, 1, 2]


def test_they_run_at_once():
    running, most = 0, 0

    async def counted(value: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return value

    assert asyncio.run(gather_all(counted(n) for n in range(5))) == list(range(5))
    assert most == 5  # one after the other would never have more than one under way


def test_one_and_none():
    assert asyncio.run(gather_all([_later(7, 0)])) == [7]
    assert asyncio.run(gather_all([])) == []


@pytest.mark.parametrize("count", [1, 3])
def test_an_error_propagates(count):
    async def fails() -> int:
        raise ValueError("no answer")

    with pytest.raises(ValueError, match="no answer"):
        asyncio.run(gather_all([fails()] + [_later(n, 0) for n in range(count - 1)]))
