"""The parquet index beside each shard: one row per tar member.

It lets tools find a key, check a member's bytes, or count records by kind without streaming the tar,
and lets the validator prove that the tar on disk is the one the writer finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from got_data.errors import ShardError

INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("member", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("object_count", pa.int32(), nullable=False),
    ]
)


@dataclass(frozen=True)
class IndexRow:
    """One member of a shard: `member` is the suffix after the key ('json', 'jpg', 'source.png')."""

    key: str
    member: str
    sha256: str
    size: int
    kind: str
    object_count: int


def write_index(path: Path, rows: list[IndexRow]) -> None:
    """Write rows as parquet to `path` and fsync it (the caller renames it into place)."""
    columns = {name: [getattr(row, name) for row in rows] for name in INDEX_SCHEMA.names}
    table = pa.Table.from_pydict(columns, schema=INDEX_SCHEMA)
    try:
        pq.write_table(table, path, compression="zstd")
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ShardError(f"cannot write shard index {path}: {exc}") from exc


def read_index(path: Path) -> list[IndexRow]:
    """Read an index; raises ShardError when it is missing, unreadable or has other columns."""
    if not path.is_file():
        raise ShardError(f"shard index {path} is missing (the writer puts one beside every tar; copy it along)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ShardError(f"cannot read shard index {path}: {exc}") from exc
    if table.schema.names != INDEX_SCHEMA.names:
        raise ShardError(f"shard index {path} has columns {table.schema.names}, expected {INDEX_SCHEMA.names}")
    return [IndexRow(**row) for row in table.to_pylist()]
