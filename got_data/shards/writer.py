"""ShardWriter: records and their images into webdataset tars, crash-safe and byte-reproducible.

Crash safety: a shard is written under a hidden temporary name (`.got-000003.tar.partial`), fsynced,
its parquet index written and renamed into place first, and only then is the tar renamed to its
final name (then the folder is fsynced). So a file named like a finished shard is always complete,
and a finished tar always has its index beside it. A crash leaves at most hidden `.partial` files
(and possibly an index whose tar never got renamed), which the next writer for that index overwrites.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from got_data.atomic import fsync_path
from got_data.errors import RecordError, ShardError
from got_data.records import EditRecord, MultiTurnRecord, T2IRecord, parse_record
from got_data.records.models import validated_json
from got_data.shards.index import MemberEntry, SampleRow, prepare_arrow, sample_row, write_index
from got_data.shards.layout import (
    JSON_MEMBER,
    TAR_FORMAT,
    check_member,
    check_name,
    index_filename,
    member_tarinfo,
    partial_path,
    tar_filename,
)

AnyRecord = T2IRecord | EditRecord | MultiTurnRecord
# A run of a small input is split into at least this many shards: webdataset hands whole shards to
# DataLoader workers, and a worker left without a shard stops the loader.
MIN_SHARDS = 8


def samples_per_shard_for(expected_samples: int | None, samples_per_shard: int, min_shards: int = MIN_SHARDS) -> int:
    """Shard size for a run of about `expected_samples`: at most `samples_per_shard`, and small enough
    that the run makes about `min_shards` shards (fewer when rejects thin it); unknown size: unchanged."""
    if expected_samples is None or min_shards < 1:
        return samples_per_shard
    return max(1, min(samples_per_shard, expected_samples // min_shards))


@dataclass(frozen=True)
class ShardInfo:
    """A finished shard, as handed to `on_shard_closed` (e.g. to log progress or upload it)."""

    path: Path
    index: int
    keys: tuple[str, ...]
    samples: int
    sha256: str


class _HashingWriter(io.RawIOBase):
    """Forwards writes to a file while hashing them, so the tar's sha256 costs no second read."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._discarding = False
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if not self._discarding:
            self.digest.update(data)
            self._raw.write(data)
        return len(data)

    def discard(self) -> None:
        """Drop further writes: an aborted shard's tar trailer must not reach the (closed) file."""
        self._discarding = True


@dataclass
class _OpenShard:
    index: int
    final: Path
    partial: Path
    file: BinaryIO
    hasher: _HashingWriter
    tar: tarfile.TarFile
    keys: list[str] = field(default_factory=list)
    key_set: set[str] = field(default_factory=set)
    rows: list[SampleRow] = field(default_factory=list)


def check_sample(record: AnyRecord, images: dict[str, bytes]) -> bytes:
    """Check that a sample may be written and return its record JSON.

    The record must re-validate from its own JSON (catches models built with `model_construct` or
    mutated after construction), and `images` must hold exactly the record's image members, each with
    bytes whose sha256 is the one the record states. Raises ShardError naming the fault.
    """
    if not isinstance(record, (T2IRecord, EditRecord, MultiTurnRecord)):
        raise ShardError(f"expected a GoT record, got {type(record).__name__}")
    data = record.model_dump_json().encode("utf-8")
    if not validated_json(data):  # a record built by parse_record from a dict dumps to bytes it validated
        try:
            parse_record(data)
        except RecordError as exc:
            raise ShardError(f"record {record.key} does not validate: {exc}") from exc
    expected = {im.member: im for im in record.images}
    for member in expected:
        check_member(member)
    if set(images) != set(expected):
        missing = sorted(set(expected) - set(images))
        extra = sorted(set(images) - set(expected))
        raise ShardError(f"record {record.key}: images missing {missing}, unexpected {extra}")
    for member, info in expected.items():
        payload = images[member]
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ShardError(f"record {record.key}: image {member!r} must be bytes, got {type(payload).__name__}")
        actual = hashlib.sha256(payload).hexdigest()
        if actual != info.sha256:
            raise ShardError(f"record {record.key}: image {member!r} has sha256 {actual}, the record says {info.sha256}")
    return data


def _padded(size: int) -> int:
    """Bytes a member's data takes in the tar: tarfile pads it to whole 512-byte blocks."""
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class ShardWriter:
    """Writes samples into `{name}-{index:06d}.tar` shards of `samples_per_shard` samples each.

    Per sample the tar holds `{key}.json` then `{key}.{member}` for each image in the record's order.
    Use as a context manager: leaving the block normally finishes the last (short) shard; leaving it
    by an exception discards the shard in progress, so only complete shards ever carry final names.
    The writer refuses to overwrite a finished shard: resume with `start_index=next_shard_index(...)`.
    """

    def __init__(
        self,
        out_dir: Path | str,
        name: str = "got",
        samples_per_shard: int = 1000,
        start_index: int = 0,
        on_shard_closed: Callable[[ShardInfo], None] | None = None,
    ) -> None:
        if samples_per_shard < 1:
            raise ShardError(f"samples_per_shard must be at least 1, got {samples_per_shard}")
        if start_index < 0:
            raise ShardError(f"start_index must be >= 0, got {start_index}")
        prepare_arrow()
        self.out_dir = Path(out_dir)
        self.name = check_name(name)
        self.samples_per_shard = samples_per_shard
        self.on_shard_closed = on_shard_closed
        self.shards: list[ShardInfo] = []
        self._next_index = start_index
        self._open: _OpenShard | None = None
        self._closed = False
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ShardError(f"cannot create output folder {self.out_dir}: {exc}") from exc

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, record: AnyRecord, images: dict[str, bytes]) -> None:
        """Check one sample (see `check_sample`) and append it; a rejected sample leaves nothing behind."""
        if self._closed:
            raise ShardError("the writer is closed")
        data = check_sample(record, images)
        shard = self._open or self._start_shard()
        if record.key in shard.key_set:
            raise ShardError(f"key {record.key} repeats within shard {shard.final.name}")
        # check_sample matched each image's sha256 to the record's: only the JSON's is new
        members = [(JSON_MEMBER, data, hashlib.sha256(data).hexdigest())] + [
            (im.member, bytes(images[im.member]), im.sha256) for im in record.images]
        entries = []
        for member, payload, sha256 in members:
            shard.tar.addfile(member_tarinfo(f"{record.key}.{member}", len(payload)), io.BytesIO(payload))
            data_offset = shard.tar.offset - _padded(len(payload))
            entries.append(MemberEntry(member, data_offset, len(payload), sha256))
        shard.rows.append(sample_row(record, entries))
        shard.keys.append(record.key)
        shard.key_set.add(record.key)
        if len(shard.keys) >= self.samples_per_shard:
            self._finish_shard()

    def close(self) -> None:
        """Finish the shard in progress (if it holds any sample). Idempotent."""
        if self._closed:
            return
        if self._open is not None:
            self._finish_shard()
        self._closed = True

    def abort(self) -> None:
        """Drop the shard in progress (its partial file is removed); finished shards stay."""
        shard, self._open = self._open, None
        self._closed = True
        if shard is None:
            return
        shard.hasher.discard()
        try:
            shard.tar.close()
            shard.file.close()
        finally:
            shard.partial.unlink(missing_ok=True)

    def _start_shard(self) -> _OpenShard:
        index = self._next_index
        final = self.out_dir / tar_filename(self.name, index)
        if final.exists():
            raise ShardError(
                f"{final} already exists; resume past it with start_index={index + 1} "
                "(got_data.shards.next_shard_index) or remove it"
            )
        partial = partial_path(final)
        try:
            file = open(partial, "wb")
        except OSError as exc:
            raise ShardError(f"cannot write {partial}: {exc}") from exc
        hasher = _HashingWriter(file)
        tar = tarfile.open(fileobj=hasher, mode="w|", format=TAR_FORMAT)
        self._open = _OpenShard(index=index, final=final, partial=partial, file=file, hasher=hasher, tar=tar)
        return self._open

    def _finish_shard(self) -> None:
        shard = self._open
        assert shard is not None
        index_final = self.out_dir / index_filename(self.name, shard.index)
        index_partial = partial_path(index_final)
        try:
            shard.tar.close()
            shard.file.flush()
            os.fsync(shard.file.fileno())
            shard.file.close()
            write_index(index_partial, shard.rows)
            os.replace(index_partial, index_final)
            os.replace(shard.partial, shard.final)
            fsync_path(self.out_dir)
        except BaseException as exc:
            self.abort()
            index_partial.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ShardError(f"cannot finish shard {shard.final}: {exc}") from exc
            raise
        self._open = None
        self._next_index += 1
        info = ShardInfo(
            path=shard.final,
            index=shard.index,
            keys=tuple(shard.keys),
            samples=len(shard.keys),
            sha256=shard.hasher.digest.hexdigest(),
        )
        self.shards.append(info)
        if self.on_shard_closed is not None:
            self.on_shard_closed(info)
