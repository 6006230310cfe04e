"""Every journal of one output read together: the single driver's (`_state/`) and each annotator's
(`_state/pNNN/`, `annotators.py`).

Whoever annotates next (the driver alone, or annotators over another number of partitions) skips an
input that any journal lists as done, so a rerun with a different split still lands every input
exactly once; the final tables (rejects.parquet, the totals and distributions of stats.json) are
merged from all of them. Read-only: each journal is written by its own writer only. A shard of the
run that no journal lists (its writer was killed between the tar's commit and its journal line) is
read back, exactly as a writer's own `Journal.reconcile` does for its shards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from got_data import uri
from got_data.annotate.journal import Journal, RejectRow
from got_data.annotate.output import STATE_DIR
from got_data.annotate.stats import DatasetStats
from got_data.shards.layout import list_run_shard_locations, parse_shard_name, tar_filename
from got_data.shards.reader import iter_samples
from got_data.uri import Location

_PARTITION_DIR = re.compile(r"p\d{3,}")


def _jsonl_rows(target: Location) -> list[dict]:
    """The rows of a journal file in a folder or bucket, up to a line a kill cut short; none if absent."""
    if not uri.is_file(target):
        return []
    rows: list[dict] = []
    for line in uri.read_text(target).splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def journal_dirs(location: Location, name: str) -> dict[str, str]:
    """Journal folder (relative to the output) -> the shard name its writer uses."""
    dirs = {STATE_DIR: name}
    state = location.join(STATE_DIR)
    if uri.is_dir(state) or location.remote:
        for info in uri.list_dir(state):
            if info.type == uri.FileType.Directory and _PARTITION_DIR.fullmatch(info.base_name):
                dirs[f"{STATE_DIR}/{info.base_name}"] = f"{name}-{info.base_name}"
    return dirs


@dataclass
class OutputJournals:
    """The journals of an output other than `own` (the one the caller writes and holds open)."""

    location: Location
    name: str
    retry_reasons: frozenset[str] = frozenset()
    own: str | None = None
    shards: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (shard name, index) -> inputs
    rejects: dict[str, RejectRow] = field(default_factory=dict)
    dataset: DatasetStats = field(default_factory=DatasetStats)

    def __post_init__(self) -> None:
        own_name = None
        for rel, shard_name in journal_dirs(self.location, self.name).items():
            if rel == self.own:
                own_name = shard_name
                continue
            self._read(rel, shard_name)
        self._read_unjournaled(own_name)

    def _read(self, rel: str, shard_name: str) -> None:
        journaled: set[int] = set()
        for row in _jsonl_rows(self.location.join(rel, "shards.jsonl")):
            self.shards[(shard_name, row["index"])] = list(row["inputs"])
            journaled.add(row["index"])
        for row in _jsonl_rows(self.location.join(rel, "rejects.jsonl")):
            reject = RejectRow(**row)
            earlier = self.rejects.get(reject.input_ref)
            if earlier is None or earlier.transient:  # a final reason outweighs a transient one
                self.rejects[reject.input_ref] = reject
        logged: dict[int, dict] = {}
        for row in _jsonl_rows(self.location.join(rel, "stats.jsonl")):
            if row.get("type") == "shard" and row["shard"] in journaled:
                logged[row["shard"]] = row["dataset"]
        for dataset in logged.values():
            self.dataset.merge(DatasetStats.from_dict(dataset))

    def _read_unjournaled(self, own_name: str | None) -> None:
        """Shards of the run no journal lists (a writer killed after the commit): their records read back."""
        for tar in list_run_shard_locations(self.location, self.name):
            shard = parse_shard_name(tar.name)
            assert shard is not None, f"{tar.name} was listed as a shard"
            if shard[0] == own_name or shard in self.shards:
                continue
            records = [sample.record for sample in iter_samples(tar)]
            self.shards[shard] = [record.source.input_ref for record in records]
            for record in records:
                self.dataset.add_record(record)

    def _present(self) -> dict[tuple[str, int], list[str]]:
        """Journaled shards whose tar is still there (a journal line for a deleted shard is not done)."""
        names = {tar.name for tar in list_run_shard_locations(self.location, self.name)}
        return {key: refs for key, refs in self.shards.items() if tar_filename(*key) in names}

    def done_refs(self, own: Journal | None = None) -> set[str]:
        """Inputs that need no more work: in a shard, or rejected for a reason this run does not retry."""
        done = {ref for refs in self._present().values() for ref in refs}
        done.update(ref for ref, row in self.rejects.items()
                    if not row.transient and row.reason not in self.retry_reasons)
        if own is not None:
            done |= own.done_refs()
        return done

    def shard_refs(self, own: Journal | None = None) -> set[str]:
        refs = {ref for refs in self._present().values() for ref in refs}
        if own is not None:
            refs.update(ref for row in own.shards.values() for ref in row["inputs"])
        return refs

    def merged_rejects(self, own: Journal | None = None) -> list[RejectRow]:
        """One row per rejected input over all journals (the writer's own rows last, so they win),
        leaving out any input a shard holds (a retried reject that succeeded elsewhere)."""
        rows = dict(self.rejects)
        if own is not None:
            rows.update(own.rejects)
        in_shards = self.shard_refs(own)
        return [row for ref, row in rows.items() if ref not in in_shards]

    def shard_count(self, own: Journal | None = None) -> int:
        return len(self._present()) + (len(own.shards) if own is not None else 0)

    def sample_count(self, own: Journal | None = None) -> int:
        return sum(len(refs) for refs in self._present().values()) + (own.samples() if own is not None else 0)

    @property
    def empty(self) -> bool:
        """No other journal and no stray shard: a single driver's output as it always was."""
        return not self.shards and not self.rejects
