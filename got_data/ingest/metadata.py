"""Dropping an image's metadata without touching its pixels (`annotate --strip-metadata`).

Published images can carry what their owners never meant to publish: EXIF GPS positions, camera
serial numbers, XMP edit histories, comments, and whole files appended after the image's end
marker. Stripping works on the container, not the pixels, so a kept JPEG is not re-encoded:

- JPEG: segments are kept only when they are needed to decode or render (frame, scan, tables,
  restart interval, JFIF APP0, Adobe APP14 for the colour transform, APP2 ICC profile); APP1
  (EXIF, XMP), the other APPn (IPTC, MPF, maker data) and COM go, and nothing after EOI is kept.
- PNG: only critical chunks and the ones that change how samples render are kept (IHDR, PLTE,
  tRNS, gAMA, cHRM, sRGB, iCCP, sBIT, IDAT, IEND); text, eXIf, time and unknown chunks go, and
  nothing after IEND is kept.

ICC profiles are kept on purpose: they say what the colours mean, and a profile names a colour
space, not a person or place. Images reach here already checked and decoded by images.py.
"""

from __future__ import annotations

from typing import Literal

from got_data.errors import InputError


class MetadataError(InputError):
    """An image's container is malformed where metadata stripping walks it."""

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_SOS = 0xDA
_APP0, _APP2, _APP14 = 0xE0, 0xE2, 0xEE
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_ICC_TAG = b"ICC_PROFILE\x00"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = frozenset({b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"IDAT", b"IEND"})


def strip_image_metadata(data: bytes, image_format: Literal["JPEG", "PNG"]) -> bytes:
    """`data` without metadata segments or chunks and without trailing bytes; pixels untouched."""
    return _strip_jpeg(data) if image_format == "JPEG" else _strip_png(data)


def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    if marker == _APP0:
        return payload.startswith((b"JFIF\x00", b"JFXX\x00"))
    if marker == _APP2:
        return payload.startswith(_ICC_TAG)
    if marker == _APP14:
        return payload.startswith(b"Adobe")
    return not (0xE0 <= marker <= 0xEF or marker == 0xFE)  # other APPn and COM are metadata


def _strip_jpeg(data: bytes) -> bytes:
    out = [_SOI]
    pos = 2
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            raise MetadataError(f"the JPEG has no segment marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI[1]:
            break
        if marker in _STANDALONE:
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if _keep_jpeg_segment(marker, data[pos + 4 : end]):
            out.append(data[pos:end])
        pos = end
        if marker == _SOS:  # entropy-coded data runs to the next marker that is not stuffing or RSTn
            scan_end = _entropy_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    out.append(_EOI)
    return b"".join(out)


def _entropy_end(data: bytes, pos: int) -> int:
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or following == 0xFF or 0xD0 <= following <= 0xD7:
            pos += 1
            continue
        return pos


def _strip_png(data: bytes) -> bytes:
    out = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length  # length, type, data, CRC
        if kind in _PNG_KEPT:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out)
