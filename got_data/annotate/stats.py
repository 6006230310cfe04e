"""Counts a run keeps as it goes: per stage, rejects by reason, tokens, boxes; saved as stats.json."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from got_data.annotate.stage import Usage


@dataclass
class RunStats:
    stage_names: list[str]
    started: float = field(default_factory=time.monotonic)
    inputs: int = 0
    skipped_done: int = 0
    records: int = 0
    entered: Counter = field(default_factory=Counter)
    passed: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)  # "stage/reason" -> count
    dropped_phrases: Counter = field(default_factory=Counter)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    boxes: int = 0

    def add_usage(self, usage: Usage) -> None:
        for stage, u in usage.by_stage.items():
            total = self.tokens.setdefault(stage, {"requests": 0, "prompt_tokens": 0, "output_tokens": 0})
            total["requests"] += u.requests
            total["prompt_tokens"] += u.prompt_tokens
            total["output_tokens"] += u.output_tokens

    @property
    def reject_count(self) -> int:
        return sum(self.rejects.values())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def as_dict(self, totals: dict[str, Any]) -> dict[str, Any]:
        elapsed = self.elapsed()
        return {
            "totals": totals,
            "run": {
                "inputs_seen": self.inputs,
                "skipped_already_done": self.skipped_done,
                "records": self.records,
                "rejects": self.reject_count,
                "elapsed_s": round(elapsed, 3),
                "records_per_s": round(self.records / elapsed, 4) if elapsed > 0 else 0.0,
                "boxes_per_record": round(self.boxes / self.records, 3) if self.records else 0.0,
                "stages": {
                    name: {"entered": self.entered[name], "passed": self.passed[name]} for name in self.stage_names
                },
                "rejects_by_reason": dict(sorted(self.rejects.items())),
                "dropped_phrases_by_reason": dict(sorted(self.dropped_phrases.items())),
                "tokens_per_stage": self.tokens,
            },
        }

    def write(self, path: Path, totals: dict[str, Any]) -> None:
        path.write_text(json.dumps(self.as_dict(totals), indent=2, sort_keys=True) + "\n", encoding="utf-8")
