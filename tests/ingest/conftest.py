"""Shared helpers for the ingest tests: writing WebDataset shards the way img2dataset does."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

ShardWriter = Callable[[Path, Iterable[tuple[str, dict[str, bytes]]]], Path]


def write_shard(path: Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> Path:
    """A tar with members KEY.EXT in the order given (img2dataset: jpg, then txt, then json per key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def shard_writer() -> ShardWriter:
    return write_shard
