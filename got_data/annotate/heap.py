"""The annotator process's garbage collector, set for a long stream of short-lived records.

An annotator holds ~150k long-lived objects (imports, Ray, pydantic schemas) before its first record,
and then allocates objects per record that die within milliseconds. CPython's defaults make every
full collection walk the long-lived ones and collect the young generation every 700 allocations:
about 0.14 CPU-ms per record, 0.03 with this setting (docs/PERFORMANCE.md). Cycles still get
collected; only their timing moves.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (CPython's default: 700)


def settle_heap() -> None:
    """Freeze what the process holds now out of the collector's walks, and collect the young
    generation less often. Called by an annotator before its run, in its own process."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
