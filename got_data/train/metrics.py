"""The run folder's loss logs: metrics.jsonl (every training step) and validation.csv (held-out loss).

A resumed run first drops the lines of steps after its checkpoint, so a step that ran before a crash
and runs again after the restart is logged once.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

VALIDATION_COLUMNS = ("step", "loss", "ce", "mse")


class MetricsLog:
    """Appends training and validation losses (rank 0 only: `enabled`)."""

    def __init__(self, train_path: Path, validation_path: Path, enabled: bool = True) -> None:
        self.train_path = train_path
        self.validation_path = validation_path
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Keep only lines of steps <= `step` in both logs (written to a temporary file, then renamed)."""
        if not self.enabled:
            return
        if self.train_path.is_file():
            lines = self.train_path.read_text().splitlines()
            kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
            _replace(self.train_path, "".join(line + "\n" for line in kept))
        if self.validation_path.is_file():
            rows = list(csv.DictReader(self.validation_path.read_text().splitlines()))
            kept_rows = [r for r in rows if int(r["step"]) <= step]
            _replace(self.validation_path, _csv_text(kept_rows))

    def train(self, record: dict) -> None:
        if self.enabled:
            with open(self.train_path, "a") as out:
                out.write(json.dumps(record) + "\n")

    def validation(self, step: int, losses: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.validation_path.is_file()
        with open(self.validation_path, "a", newline="") as out:
            writer = csv.DictWriter(out, VALIDATION_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({"step": step, **{k: losses[k] for k in VALIDATION_COLUMNS[1:]}})


def _csv_text(rows: list[dict]) -> str:
    lines = [",".join(VALIDATION_COLUMNS)] + [",".join(str(r[c]) for c in VALIDATION_COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
