"""How a run's input is split between annotators: by position in the source's listing, round robin.

Partition `i` of `n` takes the inputs at positions `i, i + n, i + 2n, ...` of the listing (after
`--limit`). The split needs no count of the input, keeps the annotators' shares within one input of
each other whatever the format (folder walk, manifest rows, samples of shards), and each annotator
walks the listing itself, so no input (and no image byte) passes through the driver. The cost: every
annotator lists the whole input (a directory walk, a manifest read, or the samples of every input
shard), which for shard inputs means each annotator streams every input tar.

Which inputs are done is decided by input reference over every journal of the output
(`output_journals.py`), never by position, so a rerun with another number of annotators, or with
none, still lands each input exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from got_data.shards.layout import partition_label


@dataclass(frozen=True)
class Partition:
    """Partition `index` of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count} does not exist")

    def takes(self, position: int) -> bool:
        """Whether the input at this position of the listing belongs to this partition."""
        return position % self.count == self.index

    def share_of(self, total: int) -> int:
        """How many of `total` listed inputs this partition takes."""
        return len(range(self.index, total, self.count))

    @property
    def label(self) -> str:
        """`p000`, `p001`, ...: its journal folder `_state/pNNN/` and shard name `got-pNNN`."""
        return partition_label(self.index)
