"""What a run counts: the work of one attempt (`RunStats`) and the records it wrote (`DatasetStats`).

Two kinds because a resumed run redoes work but not records: the work of every attempt is kept as
it was (inputs, rejects, stages, tokens, latencies), while the record distributions are kept per
finished shard and merged, so they describe exactly the shards on disk. `stats_log.py` stores both
as the run goes; docs/STATS.md says what each field means.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from got_data.annotate.stage import Usage
from got_data.distributions import Histogram, Tally
from got_data.records import EditOp, EditRecord, MultiTurnRecord, T2IRecord
from got_data.shards.index import record_counts

AnyRecord = T2IRecord | EditRecord | MultiTurnRecord
# Image sizes are tallied rounded to this many pixels, so a web-scale run keeps a few hundred sizes.
SIZE_STEP = 32
_TALLIES = ("kinds", "boxes_per_record", "objects_per_record", "boxes_per_phrase", "image_sizes", "edit_types",
            "turns_per_record")
_HISTOGRAMS = ("box_area", "box_aspect", "prompt_chars", "got_chars", "description_chars")


def process_cpu_seconds() -> float:
    """User + system CPU of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _edit_ops(record: EditRecord | MultiTurnRecord) -> list[EditOp]:
    return [record.edit] if isinstance(record, EditRecord) else list(record.steps)


def _rounded(side: int) -> int:
    return max(SIZE_STEP, round(side / SIZE_STEP) * SIZE_STEP)


@dataclass
class DatasetStats:
    """Distributions over records: what people check before they train on the shards.

    `prompt_chars` is the T2I prompt or the edit instruction(s); `description_chars` the plain
    description (T2I) or the source and target/final descriptions; boxes are relative [0,1000) boxes,
    their area a fraction of the image and their aspect width/height in pixels of the image they are on.
    """

    tallies: dict[str, Tally] = field(default_factory=lambda: {name: Tally() for name in _TALLIES})
    histograms: dict[str, Histogram] = field(default_factory=lambda: {name: Histogram() for name in _HISTOGRAMS})

    @property
    def records(self) -> int:
        return self.tallies["kinds"].count

    def add_record(self, record: AnyRecord) -> None:
        t, h = self.tallies, self.histograms
        num_objects, num_boxes = record_counts(record)
        t["kinds"].add(record.kind)
        t["objects_per_record"].add(num_objects)
        t["boxes_per_record"].add(num_boxes)
        for info in record.images:
            t["image_sizes"].add(f"{_rounded(info.width)}x{_rounded(info.height)}")
        h["got_chars"].add(len(record.got))
        first = record.images[0]
        if isinstance(record, T2IRecord):
            for obj in record.objects:
                t["boxes_per_phrase"].add(len(obj.boxes))
            h["prompt_chars"].add(len(record.prompt))
            h["description_chars"].add(len(record.description))
            self._add_boxes(record.all_boxes(), first.width, first.height)
        else:
            ops = _edit_ops(record)
            instructions = [record.instruction] if isinstance(record, EditRecord) else record.instructions
            final = record.target_description if isinstance(record, EditRecord) else record.final_description
            t["turns_per_record"].add(len(ops))
            for text in instructions:
                h["prompt_chars"].add(len(text))
            for text in (record.source_description, final):
                h["description_chars"].add(len(text))
            for n, op in enumerate(ops):
                t["edit_types"].add(op.edit_type or "unspecified")
                t["boxes_per_phrase"].add(len(op.regions))
                on = record.images[n] if n < len(record.images) else first
                self._add_boxes(op.regions, on.width, on.height)

    def _add_boxes(self, boxes: list, width: int, height: int) -> None:
        for box in boxes:
            w, h = box.x2 - box.x1, box.y2 - box.y1
            self.histograms["box_area"].add(w * h / 1_000_000)
            if w > 0 and h > 0:
                self.histograms["box_aspect"].add((w * width) / (h * height))

    def merge(self, other: DatasetStats) -> None:
        for name, tally in other.tallies.items():
            self.tallies.setdefault(name, Tally()).merge(tally)
        for name, histogram in other.histograms.items():
            self.histograms.setdefault(name, Histogram()).merge(histogram)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records,
                **{name: tally.to_dict() for name, tally in self.tallies.items()},
                **{name: histogram.to_dict() for name, histogram in self.histograms.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetStats:
        stats = cls()
        for name in _TALLIES:
            if name in data:
                stats.tallies[name] = Tally.from_dict(data[name])
        for name in _HISTOGRAMS:
            if name in data:
                stats.histograms[name] = Histogram.from_dict(data[name])
        return stats


@dataclass(frozen=True)
class LiveCounts:
    """A running attempt's counts that the live progress line needs: cheap to send every poll from an
    annotator to the driver (`RunStats.live`), summed there over the annotators."""

    inputs: int = 0
    records: int = 0
    rejects: int = 0
    passed_by_role: tuple[tuple[str, int], ...] = ()  # (role, inputs past its last stage), sorted by role

    def __add__(self, other: LiveCounts) -> LiveCounts:
        passed = Counter(dict(self.passed_by_role))
        passed.update(dict(other.passed_by_role))
        return LiveCounts(self.inputs + other.inputs, self.records + other.records, self.rejects + other.rejects,
                          tuple(sorted(passed.items())))

    def records_per_s(self, elapsed: float) -> float:
        return round(self.records / elapsed, 4) if elapsed > 0 else 0.0

    def records_per_s_by_role(self, elapsed: float) -> dict[str, float]:
        """Inputs per second through each model pool over `elapsed`: those past the last stage of its
        role (a pool that falls behind shows here first)."""
        return {role: round(n / elapsed, 4) if elapsed > 0 else 0.0 for role, n in self.passed_by_role}


@dataclass
class RunStats:
    """The work of one attempt: inputs, rejects, stages entered and passed, tokens, per-stage latency."""

    stage_names: list[str]
    role_stages: dict[str, str] = field(default_factory=dict)  # model role -> the last stage that calls it
    started: float = field(default_factory=time.monotonic)
    inputs: int = 0
    skipped_done: int = 0
    records: int = 0
    entered: Counter = field(default_factory=Counter)
    passed: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)  # "stage/reason" -> count
    dropped_phrases: Counter = field(default_factory=Counter)
    dropped_boxes: Counter = field(default_factory=Counter)  # boxes the verify stage left out, by reason
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    latency: dict[str, Histogram] = field(default_factory=dict)  # stage -> seconds per input
    objects: int = 0  # of the records written, counted as the index's num_objects and num_boxes
    boxes: int = 0
    images_in_flight: int = 0  # the bound the runner used (its setting, or what "auto" came to)

    def add_usage(self, usage: Usage) -> None:
        for stage, u in usage.by_stage.items():
            total = self.tokens.setdefault(stage, {"requests": 0, "prompt_tokens": 0, "output_tokens": 0})
            total["requests"] += u.requests
            total["prompt_tokens"] += u.prompt_tokens
            total["output_tokens"] += u.output_tokens

    def add_record(self, record: AnyRecord, count: int = 1) -> None:
        """Count a record written, its objects and its boxes each named as what it is (as the index counts
        them); `count=-1` takes back a record whose write failed."""
        num_objects, num_boxes = record_counts(record)
        self.records += count
        self.objects += count * num_objects
        self.boxes += count * num_boxes

    def add_latency(self, stage: str, seconds: float) -> None:
        self.latency.setdefault(stage, Histogram()).add(max(seconds, 0.0))

    def merge(self, other: RunStats) -> None:
        """Add another writer's work (an annotator's) to this one; the clock stays this one's."""
        for name in ("inputs", "skipped_done", "records", "objects", "boxes", "images_in_flight"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("entered", "passed", "rejects", "dropped_phrases", "dropped_boxes"):
            getattr(self, name).update(getattr(other, name))
        for stage, usage in other.tokens.items():
            total = self.tokens.setdefault(stage, {"requests": 0, "prompt_tokens": 0, "output_tokens": 0})
            for key, value in usage.items():
                total[key] = total.get(key, 0) + value
        for stage, histogram in other.latency.items():
            self.latency.setdefault(stage, Histogram()).merge(histogram)

    @property
    def reject_count(self) -> int:
        return sum(self.rejects.values())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def live(self) -> LiveCounts:
        """The counts the live progress line needs (an annotator's, polled by the driver)."""
        return LiveCounts(self.inputs, self.records, self.reject_count,
                          tuple((role, self.passed[stage]) for role, stage in sorted(self.role_stages.items())))

    def records_per_s_by_role(self, elapsed: float | None = None) -> dict[str, float]:
        """Inputs per second through each model pool so far (over `elapsed`, default: now)."""
        return self.live().records_per_s_by_role(self.elapsed() if elapsed is None else elapsed)

    def as_dict(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        return {
            "inputs_seen": self.inputs,
            "skipped_already_done": self.skipped_done,
            "records": self.records,
            "rejects": self.reject_count,
            "elapsed_s": round(elapsed, 3),
            "records_per_s": self.live().records_per_s(elapsed),
            "records_per_s_by_role": self.records_per_s_by_role(elapsed),
            "max_images_in_flight": self.images_in_flight,
            "objects_per_record": round(self.objects / self.records, 3) if self.records else 0.0,
            "boxes_per_record": round(self.boxes / self.records, 3) if self.records else 0.0,
            "stages": {
                name: {"entered": self.entered[name], "passed": self.passed[name]} for name in self.stage_names
            },
            "rejects_by_reason": dict(sorted(self.rejects.items())),
            "dropped_phrases_by_reason": dict(sorted(self.dropped_phrases.items())),
            "dropped_boxes_by_reason": dict(sorted(self.dropped_boxes.items())),
            "tokens_per_stage": self.tokens,
            "latency_s": {stage: histogram.to_dict() for stage, histogram in sorted(self.latency.items())},
        }
