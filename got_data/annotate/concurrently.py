"""Awaiting a variable number of a stage's requests at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """The results of `awaitables` run concurrently, in their order (`asyncio.gather`), a lone one
    awaited in place: most inputs have one step, one image or one box where a stage allows several,
    and gather would cost each a task and a gathering future (docs/PERFORMANCE.md)."""
    items = list(awaitables)
    if len(items) == 1:
        return [await items[0]]
    return list(await asyncio.gather(*items))
