"""Which Pillow format an image's name claims, and opening its bytes as that format only.

`Image.open` without `formats` tries every plugin Pillow has, so bytes named `x.png` that are really
EPS reach Ghostscript, and others reach parsers nobody reviewed for hostile input. Everything that opens
an image from a shard, a user file or a tar member asks this module which single format its name
claims and lets Pillow parse that format only. Importable without Ray or vLLM.
"""

from __future__ import annotations

import io
from pathlib import PurePath

from PIL import Image

from got_data.errors import GotDataError

# Extension (lower case, no dot) -> the one Pillow format its bytes may be parsed as.
IMAGE_FORMAT_BY_EXTENSION: dict[str, str] = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "bmp": "BMP",
    "gif": "GIF",
    "tif": "TIFF",
    "tiff": "TIFF",
}


class ImageFormatError(GotDataError):
    """An image's name claims no format we read, or its bytes are not the format its name claims."""


def extension_of(name: str | PurePath) -> str:
    """The lower-cased text after the last dot of a member or file name ('source.png' -> 'png', 'jpg' -> 'jpg')."""
    return PurePath(name).name.rpartition(".")[2].lower()


def claimed_format(name: str | PurePath) -> str:
    """The Pillow format a member name ('jpg', 'source.png') or file name claims.

    Raises ImageFormatError when the extension is not one of IMAGE_FORMAT_BY_EXTENSION.
    """
    fmt = IMAGE_FORMAT_BY_EXTENSION.get(extension_of(name))
    if fmt is None:
        known = ", ".join(sorted(IMAGE_FORMAT_BY_EXTENSION))
        raise ImageFormatError(f"{str(name)!r} does not name an image format got-data reads (extensions: {known})")
    return fmt


def open_claimed(data: bytes, name: str | PurePath) -> Image.Image:
    """Open image bytes with only the format their name claims (lazy, like Image.open).

    Raises ImageFormatError when the name claims no known format or the bytes are not that format;
    decoding errors of the format's own plugin surface later, from `load()`, as Pillow raises them.
    """
    fmt = claimed_format(name)
    try:
        return Image.open(io.BytesIO(data), formats=(fmt,))
    except Image.UnidentifiedImageError as exc:
        raise ImageFormatError(f"{name}: the bytes are not a {fmt} image, as the name claims") from exc
