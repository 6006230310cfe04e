"""stats.json and rejects.parquet appear complete or not at all: written under a hidden name, fsynced,
renamed, the folder fsynced (issue #17); a failed write leaves the previous file and no partial."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from got_data.annotate.journal import Journal, RejectRow
from got_data.annotate.output import OutputFolder
from got_data.annotate.stats_log import write_stats


@pytest.fixture
def disk_events(monkeypatch):
    """Every fsync (by the path of its descriptor) and every rename, in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def assert_synced_then_renamed(events: list[tuple[str, str]], final: Path) -> None:
    partial = final.with_name(f".{final.name}.partial").resolve()
    folder = final.parent.resolve()
    assert events == [("fsync", str(partial)), ("replace", f"{partial} -> {final.resolve()}"), ("fsync", str(folder))]


def test_stats_json_is_fsynced_before_its_rename(tmp_path, disk_events):
    write_stats(tmp_path.resolve(), {"complete": True})
    assert_synced_then_renamed(disk_events, tmp_path / "stats.json")
    assert json.loads((tmp_path / "stats.json").read_text()) == {"complete": True}


def test_a_failed_stats_write_keeps_the_previous_file(tmp_path):
    write_stats(tmp_path, {"complete": False})
    with pytest.raises(TypeError):
        write_stats(tmp_path, {"not json": object()})
    assert json.loads((tmp_path / "stats.json").read_text()) == {"complete": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_rejects_parquet_is_fsynced_before_its_rename(tmp_path, disk_events):
    out = tmp_path.resolve()
    journal = Journal(OutputFolder(out), "got")
    journal.reject(RejectRow(key="k", input_ref="a.jpg", stage="decode", reason="empty_file", detail="0 bytes"))
    disk_events.clear()
    journal.write_rejects_parquet(out / "rejects.parquet")
    assert_synced_then_renamed(disk_events, out / "rejects.parquet")
    assert pq.read_table(out / "rejects.parquet").to_pylist()[0]["reason"] == "empty_file"
