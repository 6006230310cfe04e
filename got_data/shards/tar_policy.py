"""Which tar members may be read at all, decided from the header before a byte of data is read.

A tar header states a member's size, and a sparse member's size is the size it expands to: a 10 KB tar
can hold a 64 MB sparse member, or a link that makes the reader resolve some other member. Both the
input reader (img2dataset shards) and the shard reader ask `MemberPolicy.refusal` first, so a member
that is a link, sparse, not a regular file or over its extension's cap is named as refused and never
read, and memory stays within the caps.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from got_data.errors import InputError
from got_data.shards.image_formats import IMAGE_FORMAT_BY_EXTENSION, extension_of

MIB = 1 << 20

# Reasons a member is refused (reject-row reasons at ingest, issue reasons in validate).
LINK_MEMBER = "link_member"
SPARSE_MEMBER = "sparse_member"
IRREGULAR_MEMBER = "irregular_member"
OVERSIZED_MEMBER = "oversized_member"
DUPLICATE_MEMBER = "duplicate_member"
MEMBER_REASONS = (LINK_MEMBER, SPARSE_MEMBER, IRREGULAR_MEMBER, OVERSIZED_MEMBER, DUPLICATE_MEMBER)

# Bytes a member may hold, by the extension after its last dot; other extensions get DEFAULT_OTHER_CAP.
DEFAULT_MEMBER_CAPS: dict[str, int] = {
    **{ext: 64 * MIB for ext in IMAGE_FORMAT_BY_EXTENSION},
    "json": 4 * MIB,
    "txt": 1 * MIB,
}
DEFAULT_OTHER_CAP = 16 * MIB

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class Refusal:
    """A member that was not read: its name in the tar, the reason (MEMBER_REASONS) and a sentence why."""

    name: str
    reason: str
    detail: str


@dataclass(frozen=True)
class MemberPolicy:
    """Size caps per member extension (lower case, after the last dot) and for every other extension."""

    caps: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MEMBER_CAPS))
    other_cap: int = DEFAULT_OTHER_CAP

    def cap(self, name: str) -> int:
        """The most bytes the member `name` ('KEY.jpg', 'KEY.source.png') may hold."""
        return self.caps.get(extension_of(name), self.other_cap)

    def refusal(self, info: tarfile.TarInfo) -> Refusal | None:
        """Why the member must not be read, or None when it may be. Directories count as non-files here;
        the input reader skips them before asking (a tar of a folder holds them)."""
        name = info.name
        if info.issym() or info.islnk():
            kind = "symbolic" if info.issym() else "hard"
            # The target is not echoed: it is the tar author's text and may name a host path.
            return Refusal(name, LINK_MEMBER, f"{name} is a {kind} link, not a file")
        if info.issparse():
            return Refusal(name, SPARSE_MEMBER, f"{name} is a sparse member that expands to {info.size} bytes")
        if not info.isfile():
            return Refusal(name, IRREGULAR_MEMBER, f"{name} is not a regular file (tar type {info.type!r})")
        cap = self.cap(name)
        if info.size > cap:
            return Refusal(name, OVERSIZED_MEMBER, f"{name} holds {info.size} bytes, over the {cap}-byte cap for "
                           f"'.{extension_of(name)}' members")
        return None

    def with_caps(self, caps: Mapping[str, int]) -> MemberPolicy:
        """This policy with some extensions' caps replaced ('*' sets the cap of every other extension)."""
        merged = dict(self.caps)
        other = self.other_cap
        for ext, size in caps.items():
            if ext == "*":
                other = size
            else:
                merged[ext.lower().lstrip(".")] = size
        return MemberPolicy(caps=merged, other_cap=other)


DEFAULT_POLICY = MemberPolicy()


def parse_size(text: str) -> int:
    """'4096', '20MB', '20MiB', '1G' -> bytes (K, M, G are powers of 1024). Raises InputError."""
    match = _SIZE_RE.match(text)
    if not match:
        raise InputError(f"size {text!r} is not a number of bytes like 4096, 512K, 20MB or 1G")
    unit = (match[2] or "").lower()[:1]
    return int(match[1]) * _UNITS[unit]


def parse_caps(items: Iterable[str]) -> dict[str, int]:
    """'EXT=SIZE' items ('jpg=20MB', 'json=1M', '*=8M') -> {ext: bytes}. Raises InputError naming a bad item."""
    caps: dict[str, int] = {}
    for item in items:
        ext, sep, size = item.partition("=")
        ext = ext.strip().lower().lstrip(".")
        if not sep or not ext or not (ext == "*" or re.fullmatch(r"[a-z0-9_-]+", ext)):
            raise InputError(f"member cap {item!r} must read EXT=SIZE, e.g. jpg=20MB, json=1M or *=8M")
        caps[ext] = parse_size(size)
    return caps
