"""Distributions that a run keeps per shard and merges: fixed-size, exact where it matters, JSON-ready.

Runs are long and resumable, so statistics are kept per shard and added up later. Raw values would
grow with the run; a `Histogram` keeps counts in geometric buckets (each ~9 % wide), so percentiles
are good to a few percent at any size, and merging is adding counts. A `Tally` keeps exact counts of
small integers or names (boxes per record, edit types), where a rounded answer would mislead.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Bucket i holds values in [BASE**i, BASE**(i+1)): 8 buckets per doubling.
BASE = 2 ** (1 / 8)
PERCENTILES = (50, 90, 99)


def _round(value: float) -> float:
    """Four significant digits: enough for a report, stable in JSON."""
    return float(f"{value:.4g}")


@dataclass
class Histogram:
    """Positive values (seconds, characters, areas) in geometric buckets; zeros counted apart."""

    buckets: Counter[int] = field(default_factory=Counter)
    zeros: int = 0
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        if value < 0 or math.isnan(value):
            raise ValueError(f"a histogram takes non-negative values, got {value}")
        self.count += 1
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)
        if value == 0:
            self.zeros += 1
        else:
            self.buckets[math.floor(math.log(value, BASE))] += 1

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The q-th percentile: the geometric middle of its bucket, kept within the exact min and max."""
        if not self.count:
            return 0.0
        rank = q / 100 * self.count
        seen = self.zeros
        if rank <= seen:
            return 0.0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if rank <= seen:
                return min(max(BASE ** (index + 0.5), self.low), self.high)
        return self.high

    def bars(self) -> list[tuple[float, float, int]]:
        """(lower edge, upper edge, count) per non-empty bucket, in order; zeros as (0, 0, n)."""
        bars = [(0.0, 0.0, self.zeros)] if self.zeros else []
        return bars + [(BASE ** i, BASE ** (i + 1), n) for i, n in sorted(self.buckets.items())]

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"count": self.count, "mean": _round(self.mean)}
        if self.count:
            summary.update({"min": self.low, "max": self.high})  # exact: they bound the percentiles
            # rounded, then kept within the exact min and max, so min <= p50 <= p90 <= p99 <= max holds
            summary.update({f"p{q}": min(max(_round(self.percentile(q)), self.low), self.high) for q in PERCENTILES})
        summary["zeros"] = self.zeros
        summary["buckets"] = {str(i): n for i, n in sorted(self.buckets.items())}
        summary["total"] = self.total
        return summary

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        histogram = cls(buckets=Counter({int(i): int(n) for i, n in data.get("buckets", {}).items()}),
                        zeros=int(data.get("zeros", 0)), count=int(data.get("count", 0)),
                        total=float(data.get("total", 0.0)))
        if histogram.count:
            histogram.low, histogram.high = float(data["min"]), float(data["max"])
        return histogram


@dataclass
class Tally:
    """Exact counts of values: small integers (boxes per record) or names (edit types)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, value: int | str) -> None:
        self.counts[str(value)] += 1

    def merge(self, other: Tally) -> None:
        self.counts.update(other.counts)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def mean(self) -> float | None:
        """The mean of numeric values (None for names)."""
        try:
            total = sum(int(value) * n for value, n in self.counts.items())
        except ValueError:
            return None
        return total / self.count if self.count else 0.0

    def items(self) -> list[tuple[str, int]]:
        """(value, count), numbers in numeric order, names by count then name."""
        if all(value.lstrip("-").isdigit() for value in self.counts):
            return sorted(self.counts.items(), key=lambda item: int(item[0]))
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))

    def to_dict(self) -> dict[str, Any]:
        mean = self.mean()
        summary: dict[str, Any] = {"count": self.count, "values": dict(self.items())}
        if mean is not None:
            summary["mean"] = _round(mean)
        return summary

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(counts=Counter({str(v): int(n) for v, n in data.get("values", {}).items()}))
