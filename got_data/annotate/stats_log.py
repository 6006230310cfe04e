"""The run's statistics on disk as the run goes: `_state/stats.jsonl`, merged into `stats.json`.

Like the journal, the log is append-only and fsynced line by line: one `attempt` line when a run
starts (time, command line, spec hash, models with revisions, package versions), one `shard` line
when a shard closes (that shard's record distributions and the attempt's work so far), one `end`
line when the attempt stops. `stats.json` is rebuilt from it at every shard close and at the end,
always through temp file + fsync + rename: a killed run leaves a stats.json up to its last shard,
and a resumed run shows every attempt. Field meanings: docs/STATS.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from got_data.annotate.journal import append_jsonl, read_jsonl, rewrite_jsonl
from got_data.annotate.stats import AnyRecord, DatasetStats
from got_data.atomic import atomic_write_text

LOG_FILE = "stats.jsonl"
STATS_FILE = "stats.json"
STATS_VERSION = 3  # 3: objects and boxes per record counted as the shard index counts them
_STATE_FIELDS = ("number", "status", "ended_at", "last_shard_at", "work")  # what the log's other lines set


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StatsLog:
    """Reads the log of earlier attempts, appends this attempt's lines, builds the stats document."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOG_FILE
        self.attempts: dict[int, dict[str, Any]] = {}
        self.shards: dict[int, dict[str, Any]] = {}  # shard index -> its DatasetStats as a dict
        for row in read_jsonl(self.path):
            self._apply(row)
        self._rewrite()  # no torn last line may sit before new appends
        self.current: int | None = None

    def _apply(self, row: dict[str, Any]) -> None:
        kind = row.get("type")
        number: Any = row.get("attempt")  # the attempt's number, None on the shard lines a rewrite keeps
        if kind == "attempt":
            self.attempts[number] = {**row["info"], "number": number, "status": "interrupted", "ended_at": None,
                                     "last_shard_at": None, "work": {}}
        elif kind == "shard":
            self.shards[row["shard"]] = row["dataset"]
            if number in self.attempts:
                self.attempts[number].update(work=row["work"], last_shard_at=row["at"])
        elif kind == "end" and number in self.attempts:
            self.attempts[number].update(work=row["work"], ended_at=row["at"], status=row["status"],
                                         last_shard_at=row.get("last_shard_at"))

    def _rewrite(self) -> None:
        """The log rewritten clean: each earlier attempt as start and end (an attempt that never ended
        was interrupted; its work is what its last shard line said), then every shard's distributions."""
        rows = []
        for number, attempt in sorted(self.attempts.items()):
            info = {k: v for k, v in attempt.items() if k not in _STATE_FIELDS}
            rows.append({"type": "attempt", "attempt": number, "info": info})
            rows.append({"type": "end", "attempt": number, "at": attempt["ended_at"], "status": attempt["status"],
                         "last_shard_at": attempt["last_shard_at"], "work": attempt["work"]})
        rows += [{"type": "shard", "attempt": None, "shard": index, "at": None, "work": {}, "dataset": dataset}
                 for index, dataset in sorted(self.shards.items())]
        rewrite_jsonl(self.path, rows)

    def _append(self, row: dict[str, Any]) -> None:
        append_jsonl(self.path, row)
        self._apply(row)

    def begin(self, info: dict[str, Any]) -> int:
        """Start a new attempt; `info` is what identifies it (argv, spec hash, models, packages)."""
        self.current = max(self.attempts, default=0) + 1
        self._append({"type": "attempt", "attempt": self.current, "info": {**info, "started_at": utc_now()}})
        self.attempts[self.current]["status"] = "running"
        return self.current

    def shard_closed(self, index: int, dataset: DatasetStats, work: dict[str, Any]) -> None:
        self._append({"type": "shard", "attempt": self.current, "shard": index, "at": utc_now(),
                      "dataset": dataset.to_dict(), "work": work})

    def end(self, work: dict[str, Any], status: str) -> None:
        """Close the current attempt: `finished`, or `failed` when it stopped on an error."""
        assert self.current is not None, "end() of an attempt that did not begin()"
        self._append({"type": "end", "attempt": self.current, "at": utc_now(), "status": status, "work": work,
                      "last_shard_at": self.attempts[self.current]["last_shard_at"]})

    def backfill(self, indexes: Iterable[int], records_of: Callable[[int], Iterable[AnyRecord]]) -> None:
        """Log the distributions of finished shards the log lacks (a kill between tar and log line)."""
        for index in indexes:
            if index not in self.shards:
                dataset = DatasetStats()
                for record in records_of(index):
                    dataset.add_record(record)
                self._append({"type": "shard", "attempt": None, "shard": index, "at": utc_now(),
                              "dataset": dataset.to_dict(), "work": {}})

    def dataset(self, indexes: Iterable[int]) -> DatasetStats:
        """The record distributions of the given finished shards, merged."""
        merged = DatasetStats()
        for index in indexes:
            if index in self.shards:
                merged.merge(DatasetStats.from_dict(self.shards[index]))
        return merged

    def document(self, work: dict[str, Any], totals: dict[str, Any], shard_indexes: Iterable[int],
                 rejects_by_reason: dict[str, int], complete: bool,
                 other_shards: DatasetStats | None = None) -> dict[str, Any]:
        """stats.json: this attempt's work as `run`, every attempt, the output's totals and distributions
        (`other_shards`: those of the shards other writers' journals hold, `output_journals.py`)."""
        dataset = self.dataset(shard_indexes)
        if other_shards is not None:
            dataset.merge(other_shards)
        attempts = []
        for number, attempt in sorted(self.attempts.items()):
            entry = {k: v for k, v in attempt.items() if k != "work"}
            entry["work"] = work if number == self.current else attempt["work"]
            attempts.append(entry)
        return {
            "stats_version": STATS_VERSION,
            "complete": complete,
            "written_at": utc_now(),
            "totals": {**totals, "rejects_by_reason": dict(sorted(rejects_by_reason.items()))},
            "run": work,
            "attempts": attempts,
            "dataset": dataset.to_dict(),
        }


def write_stats(out_dir: Path, document: dict[str, Any]) -> Path:
    """Write stats.json atomically (temp file, fsync, rename)."""
    path = out_dir / STATS_FILE
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
