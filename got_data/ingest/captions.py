"""Turning an input's raw caption (sidecar bytes, manifest cell, shard member) into text or a reason.

A bad caption never rejects an image: captions are an optional hint to the recaptioner, so a caption
that cannot be used becomes None and `caption_error` says why ("invalid_utf8: ...", "not_text: ...",
"truncated: ..."). Captions are otherwise kept verbatim, control tokens such as `<|im_end|>` included:
sanitising them is the model boundary's job, and the record keeps the original caption as given.
Only surrounding whitespace is stripped; an empty caption is simply no caption.
"""

from __future__ import annotations

import codecs
import os

from got_data.ingest.paths import PathRefused, open_regular

DEFAULT_MAX_CAPTION_CHARS = 4000

Caption = tuple[str | None, str | None]  # (caption, caption_error)


def caption_from_value(value: object, max_chars: int = DEFAULT_MAX_CAPTION_CHARS) -> Caption:
    """A caption from a manifest cell or JSON field: str, UTF-8 bytes or null."""
    if value is None:
        return None, None
    if isinstance(value, (bytes, bytearray)):
        return caption_from_bytes(bytes(value), max_chars=max_chars)
    if not isinstance(value, str):
        return None, f"not_text: the caption is a {type(value).__name__}, not a string"
    return _limit(value, max_chars)


def caption_from_bytes(
    data: bytes, max_chars: int = DEFAULT_MAX_CAPTION_CHARS, total_bytes: int | None = None
) -> Caption:
    """Decode UTF-8 caption bytes; `total_bytes` > len(data) means only a prefix was read."""
    partial = total_bytes is not None and total_bytes > len(data)
    try:
        # final=False drops a multi-byte character cut by a prefix read instead of failing on it.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=not partial)
    except UnicodeDecodeError as exc:
        return None, f"invalid_utf8: byte {exc.start} is not valid UTF-8 ({exc.reason})"
    caption, error = _limit(text, max_chars)
    if partial and caption is not None:
        error = f"truncated: kept {len(caption)} characters of a {total_bytes}-byte caption"
    return caption, error


def read_caption_file(path: str | os.PathLike[str], max_chars: int = DEFAULT_MAX_CAPTION_CHARS) -> Caption:
    """Read a sidecar caption, reading no more than the kept characters can need (4 bytes each).

    `path` should be one the source's InputRoots confined; only a regular file is read even so.
    """
    limit = 4 * max_chars + 4  # + a possible BOM
    try:
        with open_regular(os.fspath(path)) as f:
            total = os.fstat(f.fileno()).st_size
            data = f.read(limit)
    except PathRefused as exc:
        return None, f"unreadable: {exc.detail}"
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    return caption_from_bytes(data, max_chars=max_chars, total_bytes=total)


def _limit(text: str, max_chars: int) -> Caption:
    text = text.strip()
    if not text:
        return None, None
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), f"truncated: kept {max_chars} of {len(text)} characters"
    return text, None
