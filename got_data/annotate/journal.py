"""The output folder's journal: what is already done, so a rerun resumes instead of redoing.

Two append-only JSONL files under `DIR/_state/`: `shards.jsonl` (a finished shard and the input
references it holds, written right after the tar takes its final name) and `rejects.jsonl` (one line
per rejected input, flushed and fsynced as it happens). A kill can cut a last line short (ignored:
that input is redone) or finish a tar whose journal line never got written: `reconcile` reads such a
tar's records back, so its inputs still count as done. An input is done when a finished shard holds
it or a reject names it, never both.

A reject is final (a broken image stays broken) or transient (a pool that died, a timeout: the input
itself may be fine). A rerun retries the transient ones and any reason the user names
(`--retry-rejects REASON`): their rows leave the journal when it loads, so each such input is redone
and lands again in exactly one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from got_data.annotate.output import OutputFolder
from got_data.atomic import atomic_write
from got_data.shards.layout import list_shard_locations, shard_index

# Reasons that say nothing against the input: a rerun retries them.
TRANSIENT_REASONS = frozenset({"model_failure"})


@dataclass(frozen=True)
class RejectRow:
    key: str
    input_ref: str
    stage: str
    reason: str
    detail: str

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT_REASONS


REJECT_SCHEMA = pa.schema([*((name, pa.string()) for name in ("key", "input_ref", "stage", "reason", "detail")),
                           ("transient", pa.bool_())])


def read_jsonl(path: Path) -> list[dict]:
    """The rows of an append-only JSONL log, up to a line a kill cut short (nothing after it is reliable)."""
    rows: list[dict] = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything after it is unreliable
    return rows


def rewrite_jsonl(path: Path, rows: list[dict]) -> None:
    """Replace a log with `rows` (temp file, fsync, rename), so no torn line sits before new appends."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_jsonl(path: Path, row: dict) -> None:
    """Append one row and fsync it: once this returns, a kill cannot lose it."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class Journal:
    """The journal of one output folder; for a bucket it works in the staging folder and is
    published with each committed shard (`output.py`)."""

    def __init__(self, output: OutputFolder, shard_name: str, retry_reasons: frozenset[str] = frozenset()):
        self.output = output
        self.shard_name = shard_name
        output.fetch_state()
        self.state_dir = output.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.shards_path = self.state_dir / "shards.jsonl"
        self.rejects_path = self.state_dir / "rejects.jsonl"
        self.shards: dict[int, dict] = {}
        self.rejects: dict[str, RejectRow] = {}
        self.retrying: dict[str, int] = {}  # reason -> rejects this run redoes
        self._load(retry_reasons)

    def _load(self, retry_reasons: frozenset[str]) -> None:
        for row in read_jsonl(self.shards_path):
            if self.output.has_shard(self.shard_name, row["index"]):
                self.shards[row["index"]] = row  # the last line for an index wins
        for row in read_jsonl(self.rejects_path):
            reject = RejectRow(**row)
            if reject.transient or reject.reason in retry_reasons:
                self.retrying[reject.reason] = self.retrying.get(reject.reason, 0) + 1
                continue
            self.rejects.setdefault(reject.input_ref, reject)
        # Rewrite both files clean, so a torn last line never sits before new appends.
        rewrite_jsonl(self.shards_path, list(self.shards.values()))
        rewrite_jsonl(self.rejects_path, [asdict(r) for r in self.rejects.values()])

    def reconcile(self, read_input_refs) -> None:
        """Journal any finished tar the journal misses (killed between rename and journal line)."""
        for tar in list_shard_locations(self.output.location, self.shard_name):
            index = shard_index(Path(tar.name), self.shard_name)
            if index is not None and index not in self.shards:
                self.shard_done(index, read_input_refs(tar))

    def done_refs(self) -> set[str]:
        done = set(self.rejects)
        for row in self.shards.values():
            done.update(row["inputs"])
        return done

    def next_shard_index(self) -> int:
        return max(self.shards, default=-1) + 1

    def samples(self) -> int:
        return sum(len(row["inputs"]) for row in self.shards.values())

    def shard_done(self, index: int, input_refs: list[str]) -> None:
        row = {"index": index, "inputs": list(input_refs)}
        append_jsonl(self.shards_path, row)
        self.shards[index] = row
        self.output.publish_state(self.shards_path.name, self.rejects_path.name)

    def reject(self, row: RejectRow) -> None:
        if row.input_ref in self.rejects:
            return
        append_jsonl(self.rejects_path, asdict(row))
        self.rejects[row.input_ref] = row

    def write_rejects_parquet(self, path: Path) -> None:
        """The journal's rejects as parquet, sorted by input; temp file, fsync, rename."""
        write_rejects_parquet(path, self.rejects.values())


def write_rejects_parquet(path: Path, rejects: Iterable[RejectRow]) -> None:
    """Reject rows as parquet, sorted by input; temp file, fsync, rename."""
    rows = sorted(rejects, key=lambda r: r.input_ref)
    table = pa.Table.from_pylist([{**asdict(r), "transient": r.transient} for r in rows], schema=REJECT_SCHEMA)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
