"""Tar members a hostile contributor can put in a shard, built block by block (tarfile cannot write sparse
members): regular files, links, FIFOs and old-GNU sparse members whose header claims far more bytes
than the tar holds."""

from __future__ import annotations

import tarfile
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE
MIB = 1 << 20


def _header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mtime, info.mode = size, kind, linkname, 0, 0o644
    return info


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def regular(name: str, data: bytes) -> bytes:
    return _header(name, len(data)).tobuf(format=tarfile.GNU_FORMAT) + _padded(data)


def symlink(name: str, target: str) -> bytes:
    return _header(name, kind=tarfile.SYMTYPE, linkname=target).tobuf(format=tarfile.GNU_FORMAT)


def hardlink(name: str, target: str) -> bytes:
    return _header(name, kind=tarfile.LNKTYPE, linkname=target).tobuf(format=tarfile.GNU_FORMAT)


def fifo(name: str) -> bytes:
    return _header(name, kind=tarfile.FIFOTYPE).tobuf(format=tarfile.GNU_FORMAT)


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def sparse(name: str, real_size: int, data: bytes = b"end") -> bytes:
    """An old-GNU sparse member: `data` stored at the end of a hole, so it expands to `real_size` bytes."""
    header = bytearray(_header(name, len(data)).tobuf(format=tarfile.GNU_FORMAT))
    header[156:157] = tarfile.GNUTYPE_SPARSE
    header[386:398] = _octal(real_size - len(data), 12)  # first (offset, numbytes) entry of the sparse map
    header[398:410] = _octal(len(data), 12)
    header[482] = 0  # no extended sparse headers
    header[483:495] = _octal(real_size, 12)  # the size the member expands to
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    return bytes(header) + _padded(data)


def write_tar(path: Path, *members: bytes) -> Path:
    """A tar of the given member blocks and the end-of-archive marker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(members) + b"\0" * (2 * BLOCK))
    return path
