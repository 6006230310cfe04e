"""Files that appear complete or not at all: written under a hidden partial name, fsynced, renamed.

A kill or a power cut then leaves either the previous file or the new one under the final name,
never half of one (what the shard writer does for tars, here for the run's JSON and parquet files).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path(final: Path) -> Path:
    """The hidden temporary name a file is written under before its atomic rename to `final`."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's) data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temporary_path)`, fsync what it wrote, rename it to `path`, fsync the folder.

    On any error the temporary file is removed and `path` keeps its previous content."""
    partial = partial_path(path)
    try:
        write(partial)
        fsync_path(partial)
        os.replace(partial, path)
        fsync_path(path.parent)
    finally:
        partial.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write` for a UTF-8 text file."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
