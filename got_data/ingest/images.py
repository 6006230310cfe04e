"""Checking an input image and turning it into the bytes a shard stores.

Why this shape: a shard member must decode the same way everywhere (training loaders, GPU JPEG
decoders, the annotating VLM), and a record must say exactly how its image relates to the input.
So an image that is already a plain 8-bit RGB/grayscale JPEG or PNG with nothing to rotate keeps its
bytes (byte-identical, `normalization == []`); anything else is normalised to one, and every step
taken is listed. Untrusted files are checked cheaply before decoding (pixel count from the header,
so a decompression bomb is never decoded) and fully decoded once, so a truncated file is rejected
here instead of failing later in a model worker. Only the formats we accept are even parsed.

Grayscale stays grayscale (an 8-bit "L" JPEG or PNG is a plain image every decoder reads), so no
`grayscale_to_rgb` step is ever recorded; `to_pil()` gives RGB for the models.

Float samples (32-bit float TIFFs, mode "F") have no fixed white: samples within [0, 1] are
scaled by 255, any other range is stretched from its minimum to its maximum (`float_to_8bit`);
NaN or infinite samples reject the image. With `strip_metadata`, the stored bytes lose EXIF, XMP,
comments and trailing data (metadata.py) and `strip_metadata` is recorded.

A run may also ask for one stored format (`store_as`, the spec's `image_format`): then every shard
member of a role has the same name (`jpg` or `png`), which loaders that infer columns from the first
samples (HF `datasets`) need; an image in the other format is re-encoded (`reencode_png`: lossless,
the decoded pixels; `reencode_jpeg`: quality 95) and the step recorded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from got_data.errors import InputRefused, SpecError
from got_data.ingest.items import ImageReadError, InputItem
from got_data.ingest.metadata import MetadataError, strip_image_metadata
from got_data.records.models import ImageInfo

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MIN_SIDE = 8
DEFAULT_MAX_ASPECT = 100.0
JPEG_QUALITY = 95

# Reasons an image is rejected (stable strings: they appear in rejects files).
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED_IMAGE = "truncated_image"
CORRUPT_IMAGE = "corrupt_image"
TOO_MANY_PIXELS = "too_many_pixels"
TOO_SMALL = "too_small"
EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
REJECT_REASONS = (
    EMPTY_FILE, NOT_AN_IMAGE, TRUNCATED_IMAGE, CORRUPT_IMAGE, TOO_MANY_PIXELS, TOO_SMALL, EXTREME_ASPECT_RATIO
)

# Formats parsed at all: what the input extensions name (camera MPO files open through JPEG).
# Restricting Image.open keeps PIL's riskier plugins (EPS via Ghostscript, ...) away from untrusted bytes.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_LOSSY_FORMATS = ("JPEG", "MPO")
StoreAs = Literal["keep", "png", "jpeg"]
STORE_AS_FORMAT: dict[str, Literal["JPEG", "PNG"]] = {"png": "PNG", "jpeg": "JPEG"}
_KEEPABLE_MODES = ("RGB", "L")
_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_SIGNATURES = (
    (_PNG_SIGNATURE, "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"RIFF", "WebP"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)


class ImageRejected(InputRefused):
    """An input image that cannot be used; `reason` is one of REJECT_REASONS (or an input problem reason)."""

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class PreparedImage:
    """The image as the shard stores it, with what was done to get there."""

    data: bytes = field(repr=False)
    format: Literal["JPEG", "PNG"]
    width: int
    height: int
    sha256: str
    original_sha256: str
    normalization: list[str]

    @property
    def member_ext(self) -> Literal["jpg", "png"]:
        return "jpg" if self.format == "JPEG" else "png"

    def to_pil(self) -> Image.Image:
        """The stored image decoded as RGB, for the models."""
        img = Image.open(io.BytesIO(self.data), formats=(self.format,))
        img.load()
        return img if img.mode == "RGB" else img.convert("RGB")

    def image_info(self, role: str, member: str) -> ImageInfo:
        """The record's description of this image stored as shard member `member` (e.g. "jpg")."""
        return ImageInfo(
            role=role, member=member, sha256=self.sha256, width=self.width, height=self.height, format=self.format,
            original_sha256=self.original_sha256, normalization=list(self.normalization),
        )


def load_input_image(
    item: InputItem,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    strip_metadata: bool = False,
    store_as: StoreAs = "keep",
) -> PreparedImage:
    """Read and prepare an item's image; every way it can fail is an ImageRejected with a reason."""
    if item.problem is not None:
        raise ImageRejected(*item.problem)
    assert item.image is not None  # InputItem guarantees an image when there is no problem
    try:
        raw = item.image.read()
    except ImageReadError as exc:
        raise ImageRejected(exc.reason, exc.detail) from exc
    return prepare_image(raw, max_pixels=max_pixels, min_side=min_side, max_aspect=max_aspect,
                         strip_metadata=strip_metadata, store_as=store_as)


def prepare_image(
    raw: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    strip_metadata: bool = False,
    store_as: StoreAs = "keep",
) -> PreparedImage:
    """Check `raw` and give the bytes to store: unchanged when already plain (and, unless `store_as`
    is "keep", already in that format), else normalised; with `strip_metadata`, without metadata
    either way.

    Relies on PIL's default `ImageFile.LOAD_TRUNCATED_IMAGES = False`; code that sets it True
    process-wide would let truncated files through.
    """
    if not raw:
        raise ImageRejected(EMPTY_FILE, "the file is empty (0 bytes)")
    img = _open(raw, max_pixels)
    _check_geometry(img.size, max_pixels, min_side, max_aspect)
    _decode(img, raw)
    if store_as not in ("keep", *STORE_AS_FORMAT):
        raise SpecError(f"image_format must be one of keep, png, jpeg; got {store_as!r}")
    original_sha256 = hashlib.sha256(raw).hexdigest()
    kept_format: Literal["JPEG", "PNG"] = "JPEG" if img.format in _LOSSY_FORMATS else "PNG"
    if _keepable(img, raw) and STORE_AS_FORMAT.get(store_as, kept_format) == kept_format:
        prepared = PreparedImage(
            data=raw, format=kept_format, width=img.width, height=img.height,
            sha256=original_sha256, original_sha256=original_sha256, normalization=[],
        )
    else:
        prepared = _normalize(img, raw, original_sha256, STORE_AS_FORMAT.get(store_as))
    return _without_metadata(prepared) if strip_metadata else prepared


def _without_metadata(prepared: PreparedImage) -> PreparedImage:
    """The prepared image with its metadata dropped, the step recorded when any bytes went."""
    try:
        data = strip_image_metadata(prepared.data, prepared.format)
    except MetadataError as exc:
        raise ImageRejected(CORRUPT_IMAGE, f"its metadata cannot be stripped ({exc})") from exc
    if data == prepared.data:
        return prepared
    return replace(prepared, data=data, sha256=hashlib.sha256(data).hexdigest(),
                   normalization=[*prepared.normalization, "strip_metadata"])


def _open(raw: bytes, max_pixels: int) -> Image.Image:
    """Parse the header only; PIL's own bomb guard is kept at or above our limit and made an error."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(raw), formats=ACCEPTED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(TOO_MANY_PIXELS, str(exc)) from exc
        except UnidentifiedImageError as exc:
            signed_as = next((fmt for magic, fmt in _SIGNATURES if raw.startswith(magic)), None)
            if signed_as is not None:
                detail = f"starts like a {signed_as} file but its header cannot be read (cut short or damaged)"
                raise ImageRejected(CORRUPT_IMAGE, detail) from exc
            raise ImageRejected(NOT_AN_IMAGE, f"not a {'/'.join(ACCEPTED_FORMATS)} image") from exc
        except Exception as exc:  # PIL's parsers raise many types on malformed headers
            raise _decode_failure(exc) from exc


def _check_geometry(size: tuple[int, int], max_pixels: int, min_side: int, max_aspect: float) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels, over the limit {max_pixels}")
    if min(width, height) > 0 and max(width, height) / min(width, height) > max_aspect:
        raise ImageRejected(
            EXTREME_ASPECT_RATIO, f"{width}x{height}: aspect ratio over {max_aspect:g}, too thin to describe"
        )
    if min(width, height) < min_side:
        raise ImageRejected(TOO_SMALL, f"{width}x{height}: a side is under {min_side} pixels")


def _decode(img: Image.Image, raw: bytes) -> None:
    """Decode every pixel of the first frame, so truncation and corruption show up now."""
    try:
        img.load()
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError, ...
        raise _decode_failure(exc) from exc
    if img.format == "PNG" and raw.rfind(_PNG_IEND) == -1:
        # PIL stops after the pixel data, so a PNG cut just before its end marker would pass unnoticed.
        raise ImageRejected(TRUNCATED_IMAGE, "the PNG file ends before its IEND chunk")


def _decode_failure(exc: Exception) -> ImageRejected:
    message = str(exc) or type(exc).__name__
    lowered = message.lower()
    if isinstance(exc, EOFError) or "truncated" in lowered or "end of" in lowered:
        return ImageRejected(TRUNCATED_IMAGE, f"the file ends early ({message})")
    return ImageRejected(CORRUPT_IMAGE, f"the image data cannot be decoded ({message})")


def _orientation(img: Image.Image) -> int:
    value = img.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def _png_bit_depth(raw: bytes) -> int | None:
    """Bit depth from the PNG IHDR chunk (PIL reduces 16-bit RGB to 8-bit silently, so we look)."""
    if raw.startswith(_PNG_SIGNATURE) and len(raw) > 24 and raw[12:16] == b"IHDR":
        return raw[24]
    return None


def _webp_is_lossless(raw: bytes) -> bool:
    """Whether a WebP's first image chunk is VP8L (lossless) rather than VP8 (lossy)."""
    pos = 12
    while pos + 8 <= len(raw):
        fourcc, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if fourcc == b"VP8L":
            return True
        if fourcc == b"VP8 ":
            return False
        pos += 8 + size + (size & 1)
    return False


def _keepable(img: Image.Image, raw: bytes) -> bool:
    if getattr(img, "n_frames", 1) > 1 or _orientation(img) != 1 or img.mode not in _KEEPABLE_MODES:
        return False
    if img.format == "JPEG":
        return not (img.info.get("progressive") or img.info.get("progression"))
    if img.format == "PNG":
        return "transparency" not in img.info and (_png_bit_depth(raw) or 8) <= 8
    return False


def _normalize(
    img: Image.Image, raw: bytes, original_sha256: str, store_format: Literal["JPEG", "PNG"] | None
) -> PreparedImage:
    """Re-encode to `store_format`, or, when None, to PNG unless the input was lossy (then JPEG)."""
    source_format = img.format
    icc_profile = img.info.get("icc_profile")
    steps: list[str] = []
    if getattr(img, "n_frames", 1) > 1:
        steps.append("first_frame")
    if _orientation(img) != 1:
        img = ImageOps.exif_transpose(img)
        steps.append("exif_transpose")
    img = _to_plain_mode(img, raw, steps)
    if "cmyk_to_rgb" in steps:
        icc_profile = None  # a CMYK profile does not describe the converted RGB samples
    if store_format is None:
        as_jpeg = source_format in _LOSSY_FORMATS or (source_format == "WEBP" and not _webp_is_lossless(raw))
    else:
        as_jpeg = store_format == "JPEG"
    out = io.BytesIO()
    if as_jpeg:
        img.save(out, format="JPEG", quality=JPEG_QUALITY, icc_profile=icc_profile)
        steps.append("reencode_jpeg")
    else:
        img.save(out, format="PNG", icc_profile=icc_profile)
        steps.append("reencode_png")
    data = out.getvalue()
    return PreparedImage(
        data=data, format="JPEG" if as_jpeg else "PNG", width=img.width, height=img.height,
        sha256=hashlib.sha256(data).hexdigest(), original_sha256=original_sha256, normalization=steps,
    )


def _float_to_8bit(samples: np.ndarray) -> Image.Image:
    """Float samples to 8-bit gray: [0, 1] scaled by 255, any other range stretched min..max."""
    if not np.isfinite(samples).all():
        raise ImageRejected(CORRUPT_IMAGE, "the float image has NaN or infinite samples")
    low, high = float(samples.min()), float(samples.max())
    if low >= 0.0 and high <= 1.0:
        scaled = samples * 255.0
    elif high > low:
        scaled = (samples - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(samples)  # one value everywhere, outside [0, 1]: no range to show
    return Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8), mode="L")


def _to_plain_mode(img: Image.Image, raw: bytes, steps: list[str]) -> Image.Image:
    """Convert to 8-bit RGB or L without transparency, recording each conversion."""
    if img.mode == "F":
        img = _float_to_8bit(np.asarray(img, dtype=np.float64))
        steps.append("float_to_8bit")
    elif img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples (or wider) scaled to 8 bits; PIL's convert("L") would clip instead of scale.
        samples = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
        img = Image.fromarray((samples / 257.0).round().astype(np.uint8), mode="L")
        steps.append("16bit_to_8bit")
    elif (_png_bit_depth(raw) or 8) > 8:
        steps.append("16bit_to_8bit")  # PIL already reduced the samples to 8 bits when decoding
    if img.mode == "CMYK":
        img = img.convert("RGB")
        steps.append("cmyk_to_rgb")
    elif img.mode in ("P", "PA"):
        transparent = img.mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if transparent else "RGB")
        steps.append("palette_to_rgb")
    elif img.mode == "1":
        img = img.convert("L")
        steps.append("bilevel_to_grayscale")
    if img.mode in ("RGB", "L") and "transparency" in img.info:
        img = img.convert("RGBA" if img.mode == "RGB" else "LA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        gray = img.mode in ("LA", "La")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA")).convert("L" if gray else "RGB")
        steps.append("rgba_flatten")
    if img.mode not in _KEEPABLE_MODES:
        steps.append(f"{img.mode.lower().replace(';', '')}_to_rgb")
        img = img.convert("RGB")
    return img

