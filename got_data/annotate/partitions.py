"""How a run's input is split between annotators (`split`): by input shard where the input is shards,
by contiguous ranges of the listing where the source can read one (folders, manifests), else round robin.

- **By input shard** (img2dataset / WebDataset tars, no `--limit`, at least one tar per annotator):
  partition `i` of `n` reads the tars at positions `i, i + n, ...` of the source's sorted shard list
  and nothing else, so each input tar is streamed once in the whole run. Shares are whole tars, so
  they are as even as the tars' sizes are.
- **By range** (folders and manifests, `RangedSource`): partition `i` of `n` takes positions
  `i * N // n` to `(i + 1) * N // n - 1` of the listing, N its count (after `--limit`, itself a
  position in that listing): shares within one input of each other. An annotator reads only its
  range where the format allows (a Parquet manifest its row groups; a folder walk stops at the
  range's end and reads captions only in it; a JSONL manifest parses only its lines). The driver
  counts the listing once to cut the ranges.
- **Round robin** (shard inputs with fewer tars than annotators, or a `--limit`): partition `i` of
  `n` takes the inputs at positions `i, i + n, 2n, ...` of the listing (after `--limit`); every
  annotator streams every input tar. A `--limit` forces it because "the first N inputs" is a
  position in the whole listing, which an annotator reading only its own tars cannot know.

Either way no input (and no image byte) passes through the driver. Which inputs are done is decided
by input reference over every journal of the output (`output_journals.py`), never by position,
range or tar, so a rerun with another number of annotators, another split, or none, still lands
each input exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from got_data.shards.layout import partition_label


@dataclass(frozen=True)
class Partition:
    """Partition `index` of `count`: the listing's positions `index::count`, or, with `shards`, the
    source's shards at those positions (all their inputs), or, with `rows`, the listing's positions
    `rows[0]` to `rows[1] - 1`."""

    index: int
    count: int
    shards: tuple[int, ...] | None = None
    rows: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count} does not exist")
        if self.shards is not None and self.rows is not None:
            raise ValueError("a partition is whole shards or a range of rows, not both")

    @property
    def by_shard(self) -> bool:
        return self.shards is not None

    def listing(self, source: Any) -> Any:
        """What this partition walks: a shard source narrowed to its own shards, a ranged source to its
        range, else the whole source."""
        if self.shards is not None:
            return source.of_shards(self.shards)
        return source.of_range(*self.rows) if self.rows is not None else source

    def takes(self, position: int) -> bool:
        """Whether the input at this position of `listing(source)` belongs to this partition."""
        return self.shards is not None or self.rows is not None or position % self.count == self.index

    def share_of(self, total: int | None) -> int | None:
        """How many of `total` listed inputs this partition takes (None by shard: the tars' sizes decide;
        a range knows its size without `total`)."""
        if self.rows is not None:
            return len(range(*self.rows))
        if self.shards is not None or total is None:
            return None
        return len(range(self.index, total, self.count))

    @property
    def label(self) -> str:
        """`p000`, `p001`, ...: its journal folder `_state/pNNN/` and shard name `got-pNNN`."""
        return partition_label(self.index)


def split(source: Any, count: int, limit: int | None = None) -> list[Partition]:
    """The run's `count` partitions: whole input tars per annotator when the source can read a subset
    of its shards (`of_shards`), has at least `count` of them and no `limit`; contiguous ranges when
    it can read a range of its listing (`of_range`) and count it; else round robin."""
    shards = getattr(source, "shards", None)
    if limit is None and hasattr(source, "of_shards") and shards is not None and len(shards) >= count:
        return [Partition(i, count, tuple(range(i, len(shards), count))) for i in range(count)]
    total = source.count() if hasattr(source, "of_range") else None
    if total is not None:
        total = total if limit is None else min(total, limit)
        cuts = [total * i // count for i in range(count + 1)]
        return [Partition(i, count, rows=(cuts[i], cuts[i + 1])) for i in range(count)]
    return [Partition(i, count) for i in range(count)]
