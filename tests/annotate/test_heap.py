"""An annotator settles its process's heap before its run (`got_data/annotate/heap.py`)."""

from __future__ import annotations

import subprocess
import sys


def test_settle_heap_freezes_what_the_process_holds_and_collects_the_young_less_often():
    """Run in a fresh interpreter: the setting is process-wide, and the test session's must not change."""
    script = ("import gc; from got_data.annotate.heap import YOUNG_THRESHOLD, settle_heap; "
              "before = gc.get_threshold(); settle_heap(); after = gc.get_threshold(); "
              "assert gc.get_freeze_count() > 1000, gc.get_freeze_count(); "
              "assert after == (YOUNG_THRESHOLD, *before[1:]), (before, after); "
              "gc.collect(); assert gc.get_freeze_count() > 1000")
    subprocess.run([sys.executable, "-c", script], check=True)
