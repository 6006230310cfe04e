"""The parquet index beside each shard: one row per sample, what people filter and seek on.

It lets tools pick samples (kind, size, GoT length, objects, boxes, split) without opening the tar,
read any member by its byte offset (random access), and lets the validator prove that the tar on
disk is the one the writer finished. Version 2 (this one) has a row per sample; version 1 (shards
written before) had a row per tar member and still reads, through the member view `read_index`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from got_data import uri
from got_data.errors import ShardError
from got_data.records import EditRecord, MultiTurnRecord, T2IRecord
from got_data.uri import Location

INDEX_VERSION = 2
VERSION_KEY = b"got_data.index_version"
# A sample is in the validation split when its bucket (0-99, from the key's hash) is under this.
VALIDATION_PERCENT = 5

MEMBER_TYPE = pa.struct(
    [
        pa.field("member", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
    ]
)
INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("input_ref", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("split_bucket", pa.int8(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("got_chars", pa.int32(), nullable=False),
        pa.field("num_objects", pa.int32(), nullable=False),
        pa.field("num_boxes", pa.int32(), nullable=False),
        pa.field("members", pa.list_(MEMBER_TYPE), nullable=False),
    ],
    metadata={VERSION_KEY: str(INDEX_VERSION).encode()},
)
# Version 1: one row per tar member; object_count was record.object_count() (objects for T2I,
# edit regions for edits).
V1_COLUMNS = ["key", "member", "sha256", "size", "kind", "object_count"]

AnyRecord = T2IRecord | EditRecord | MultiTurnRecord


@dataclass(frozen=True)
class MemberEntry:
    """Where one member's bytes sit in the tar: `offset` is the first data byte (after its header)."""

    member: str
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class SampleRow:
    """One sample of a shard, as the version-2 index stores it.

    `width`/`height` are the first image's (T2I: the image; edits: the source). `num_objects` counts
    grounded objects (T2I) or edit operations (edits: one edited object per turn); `num_boxes` counts
    the boxes in the GoT text.
    """

    key: str
    input_ref: str
    kind: str
    split: str
    split_bucket: int
    width: int
    height: int
    got_chars: int
    num_objects: int
    num_boxes: int
    members: tuple[MemberEntry, ...]


@dataclass(frozen=True)
class IndexRow:
    """The member view of an index (either version): one tar member with its size and sha256.

    `object_count` is what version 1 stored, record.object_count(): objects for T2I, the GoT's boxes
    for edits (regions, and since schema 1.1 placed objects; for a version-2 index it is derived from
    num_objects / num_boxes the same way).
    """

    key: str
    member: str
    sha256: str
    size: int
    kind: str
    object_count: int


def split_bucket(key: str) -> int:
    """0-99 from the sha256 of the key: the same key lands in the same bucket on every machine and run."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100


def record_counts(record: AnyRecord) -> tuple[int, int]:
    """(num_objects, num_boxes) of a record, as the index names them. The boxes are counted from the
    structured fields: a valid record's GoT text holds exactly those (its invariants), once each."""
    if isinstance(record, T2IRecord):
        num_objects = len(record.objects)
    else:
        num_objects = 1 if isinstance(record, EditRecord) else len(record.steps)
    return num_objects, len(record.all_boxes())


def sample_row(record: AnyRecord, members: list[MemberEntry]) -> SampleRow:
    """The index row of a record written with `members` (json first, then the images)."""
    num_objects, num_boxes = record_counts(record)
    first = record.images[0]
    bucket = split_bucket(record.key)
    return SampleRow(
        key=record.key, input_ref=record.source.input_ref, kind=record.kind,
        split="validation" if bucket < VALIDATION_PERCENT else "train", split_bucket=bucket,
        width=first.width, height=first.height, got_chars=len(record.got), num_objects=num_objects,
        num_boxes=num_boxes, members=tuple(members),
    )


def prepare_arrow() -> None:
    """Pay now what pyarrow's first conversion of Python values costs once per process (it imports
    pandas: ~0.25 CPU-s): a shard writer calls this when it opens, so that its first index write,
    mid-run, does not."""
    pa.array([], type=pa.int64())


def write_index(path: Path, rows: list[SampleRow]) -> None:
    """Write rows as a version-2 parquet index to `path` and fsync it (the caller renames it into place)."""
    columns = {name: [getattr(row, name) for row in rows] for name in INDEX_SCHEMA.names}
    columns["members"] = [[vars(m) for m in row.members] for row in rows]
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


def _read_table(path: Path | Location) -> tuple[pa.Table, int]:
    """The index table and its version (a local path or a Location of the URI layer); ShardError when
    missing, unreadable or of unknown shape."""
    if not uri.is_file(path):
        raise ShardError(f"shard index {path} is missing (the writer puts one beside every tar; copy it along)")
    try:
        if isinstance(path, Location) and path.remote:
            with uri.open_input(path) as f:
                table = pq.read_table(f)
        else:
            table = pq.read_table(path if isinstance(path, Path) else path.path)
    except (OSError, pa.ArrowException) as exc:
        raise ShardError(f"cannot read shard index {path}: {exc}") from exc
    metadata = table.schema.metadata or {}
    if VERSION_KEY not in metadata and table.schema.names == V1_COLUMNS:
        return table, 1
    if metadata.get(VERSION_KEY) == str(INDEX_VERSION).encode() and table.schema.names == INDEX_SCHEMA.names:
        return table, INDEX_VERSION
    version = metadata.get(VERSION_KEY, b"1").decode("utf-8", "replace")
    raise ShardError(
        f"shard index {path} (version {version}) has columns {table.schema.names}; this got-data reads version 1 "
        f"{V1_COLUMNS} and version {INDEX_VERSION} {INDEX_SCHEMA.names}"
    )


def index_version(path: Path | Location) -> int:
    return _read_table(path)[1]


def read_sample_index(path: Path | Location) -> list[SampleRow]:
    """The per-sample rows of a version-2 index; a version-1 index raises ShardError (it has no such rows)."""
    table, version = _read_table(path)
    if version != INDEX_VERSION:
        raise ShardError(
            f"shard index {path} is version {version} (one row per member, no offsets); "
            "read it with read_index, or rewrite the shard with this got-data for the per-sample index"
        )
    return _sample_rows(table)


def _sample_rows(table: pa.Table) -> list[SampleRow]:
    rows = []
    for row in table.to_pylist():
        row["members"] = tuple(MemberEntry(**m) for m in row["members"])
        rows.append(SampleRow(**row))
    return rows


def read_index(path: Path | Location) -> list[IndexRow]:
    """The member view of an index of either version: one IndexRow per tar member, in tar order."""
    table, version = _read_table(path)
    if version == 1:
        return [IndexRow(**row) for row in table.to_pylist()]
    rows: list[IndexRow] = []
    for sample in _sample_rows(table):
        legacy_count = sample.num_objects if sample.kind == "t2i" else sample.num_boxes
        rows.extend(IndexRow(sample.key, m.member, m.sha256, m.size, sample.kind, legacy_count) for m in sample.members)
    return rows
