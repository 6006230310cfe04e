"""Streaming a shard tar sample by sample, with flat memory and honest end-of-file detection.

`tarfile` in stream mode ('r|') reads sequentially and holds one member at a time, but it stops
silently at a header that is cut short or garbled after the first member. This module checks that the
archive really ends with its end-of-archive zero blocks, so a truncated shard is reported as truncated
instead of read as a shorter, valid-looking one. Every member is first put to a `MemberPolicy`
(`tar_policy.py`): links, sparse members, non-files and members over their cap are named in the
sample's `refused` list and never read, so memory holds at most one sample within the caps.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from got_data import uri
from got_data.errors import ShardError
from got_data.shards.layout import split_member_name
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy, Refusal
from got_data.uri import Location, StorageError

_BLOCK = 512
_END_OF_ARCHIVE = b"\0" * (2 * _BLOCK)
_CHUNK = 1 << 20


class TarUnreadableError(ShardError):
    """The file is not a tar archive (empty, another format, a garbled first header)."""


class TarTruncatedError(ShardError):
    """The tar archive stops early: a member's data or the end-of-archive marker is missing."""


@dataclass
class RawSample:
    """Consecutive tar members sharing one key, as (suffix, bytes) in archive order.

    `repeated` flags a key that already had an earlier, separate run of members in this tar (the
    webdataset layout needs a sample's members to be adjacent). `refused` lists the members the
    policy kept unread (links, sparse, non-files, oversized), with the reason.
    """

    key: str
    members: list[tuple[str, bytes]] = field(default_factory=list)
    repeated: bool = False
    refused: list[Refusal] = field(default_factory=list)


class _HashingReader(io.RawIOBase):
    """Hashes every byte tarfile pulls from the file, so the shard's sha256 needs no second pass."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        while chunk := self._raw.read(_CHUNK):
            self.digest.update(chunk)


class TarStream:
    """One pass over a shard: iterate `samples()`, then `sha256` holds the whole file's digest.

    Raises TarUnreadableError / TarTruncatedError (both ShardError) from `samples()`.
    """

    def __init__(self, path: Path | Location, policy: MemberPolicy = DEFAULT_POLICY) -> None:
        self.path = path
        self.policy = policy
        self.sha256: str | None = None
        self.size = 0

    def samples(self) -> Iterator[RawSample]:
        try:
            raw = uri.open_input(self.path)
            self.size = uri.file_size(self.path)
        except (OSError, StorageError) as exc:
            raise TarUnreadableError(f"{self.path}: cannot open: {exc}") from exc
        with raw:
            if self.size == 0:
                raise TarUnreadableError(f"{self.path}: zero-byte file, not a tar archive")
            reader = _HashingReader(raw)
            try:
                tar = tarfile.open(fileobj=reader, mode="r|")
            except tarfile.ReadError as exc:
                raise TarUnreadableError(f"{self.path}: not a readable tar archive ({exc})") from exc
            yield from self._group(tar)
            self._check_end(raw, tar.offset)
            reader.drain()
            self.sha256 = reader.digest.hexdigest()

    def _group(self, tar: tarfile.TarFile) -> Iterator[RawSample]:
        seen: set[str] = set()
        current: RawSample | None = None
        try:
            for info in tar:
                key, suffix = split_member_name(info.name)
                if current is None or key != current.key:
                    if current is not None:
                        seen.add(current.key)
                        yield current
                    current = RawSample(key=key, repeated=key in seen)
                refusal = self.policy.refusal(info)
                if refusal is not None:
                    current.refused.append(refusal)
                    continue
                member = tar.extractfile(info)
                assert member is not None
                current.members.append((suffix, member.read(info.size)))
        except (tarfile.ReadError, EOFError) as exc:
            raise TarTruncatedError(f"{self.path}: tar ends inside a member ({exc})") from exc
        except tarfile.TarError as exc:
            raise TarUnreadableError(f"{self.path}: bad tar data ({exc})") from exc
        if current is not None:
            yield current

    def _check_end(self, raw: IO[bytes], offset: int) -> None:
        """tarfile stops quietly at a cut-off or garbled header; a complete tar has two zero blocks there."""
        position = raw.tell()
        raw.seek(offset)
        tail = raw.read(len(_END_OF_ARCHIVE))
        raw.seek(position)
        if tail == _END_OF_ARCHIVE:
            return
        if len(tail) < len(_END_OF_ARCHIVE):
            raise TarTruncatedError(
                f"{self.path}: the file ends at byte {offset + len(tail)} without the end-of-archive marker "
                "(was the write interrupted?)"
            )
        raise TarUnreadableError(f"{self.path}: garbled tar header at byte {offset}")
