"""--strip-metadata drops EXIF, comments, text chunks and trailing bytes without touching pixels;
float TIFFs keep their content when reduced to 8 bits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from got_data.annotate.decode import _decode_one
from got_data.ingest import BytesImage, ImageRejected, prepare_image
from got_data.ingest.metadata import strip_image_metadata
from tests.ingest.bad_images import encode, gradient

TRAILER = b"PK\x03\x04 a zip appended after the image: secret.txt"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "CameraMaker"
    exif[ExifTags.Base.Model] = "Model-SN123456"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return exif


def _jpeg_with_metadata(orientation: int = 1) -> bytes:
    out = io.BytesIO()
    gradient().save(out, format="JPEG", quality=90, exif=_exif(orientation), comment=b"shot at home",
                    icc_profile=SRGB)
    return out.getvalue() + TRAILER


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _assert_clean(data: bytes) -> None:
    for secret in (b"CameraMaker", b"SN123456", b"shot at home", b"secret.txt", b"Exif\x00\x00"):
        assert secret not in data
    with Image.open(io.BytesIO(data)) as img:
        assert not img.getexif() and "comment" not in img.info
        assert img.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}


def test_a_kept_jpeg_loses_exif_gps_comment_and_trailer_but_not_a_pixel():
    raw = _jpeg_with_metadata()
    assert b"CameraMaker" in raw and raw.endswith(TRAILER)
    kept = prepare_image(raw)
    assert kept.data == raw and kept.normalization == []  # without the option: byte-identical
    stripped = prepare_image(raw, strip_metadata=True)
    assert stripped.normalization == ["strip_metadata"]
    _assert_clean(stripped.data)
    assert stripped.data.endswith(b"\xff\xd9")
    assert np.array_equal(_pixels(stripped.data), _pixels(raw))  # containers only: no re-encoding
    with Image.open(io.BytesIO(stripped.data)) as img:
        assert img.info["icc_profile"] == SRGB  # colour meaning kept on purpose
    assert stripped.original_sha256 == kept.sha256 != stripped.sha256
    assert stripped.image_info("image", "jpg").normalization == ["strip_metadata"]


def test_a_normalised_jpeg_is_stripped_too():
    stripped = prepare_image(_jpeg_with_metadata(orientation=6), strip_metadata=True)
    assert stripped.normalization[:2] == ["exif_transpose", "reencode_jpeg"]
    assert stripped.normalization[-1] == "strip_metadata"  # PIL carried the comment into the re-encode
    _assert_clean(stripped.data)


def test_a_png_keeps_only_chunks_that_render():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "CameraMaker owner")
    info.add_itxt("Location", "52.52N 13.40E, shot at home")
    out = io.BytesIO()
    gradient().save(out, format="PNG", pnginfo=info, exif=_exif(), icc_profile=SRGB)
    raw = out.getvalue() + TRAILER
    assert prepare_image(raw).data == raw
    stripped = prepare_image(raw, strip_metadata=True)
    assert stripped.normalization == ["strip_metadata"]
    _assert_clean(stripped.data)
    assert stripped.data.endswith(b"IEND\xaeB`\x82")
    assert np.array_equal(_pixels(stripped.data), _pixels(raw))
    with Image.open(io.BytesIO(stripped.data)) as img:
        assert img.info["icc_profile"] == SRGB and "Author" not in img.info


def test_an_image_without_metadata_records_nothing():
    raw = encode(gradient(), "PNG")
    assert prepare_image(raw, strip_metadata=True).normalization == []


def test_stripping_does_not_lose_a_restart_marker_or_stuffed_byte():
    """Entropy-coded data holds 0xFF00 stuffing and RSTn markers; the walk must copy them all."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=100, restart_marker_blocks=1, exif=_exif())
    raw = out.getvalue()
    assert b"\xff\xd0" in raw and b"\xff\x00" in raw
    stripped = strip_image_metadata(raw, "JPEG")
    assert len(stripped) < len(raw) and np.array_equal(_pixels(stripped), _pixels(raw))


def test_the_decode_task_applies_the_option():
    raw = _jpeg_with_metadata()
    plain, _ = _decode_one(BytesImage(raw), 64_000_000, None, False)
    stripped, model_image = _decode_one(BytesImage(raw), 64_000_000, None, True)
    assert plain.image.data == raw
    assert stripped.image.normalization == ["strip_metadata"] and model_image is not None
    _assert_clean(stripped.image.data)


def _float_tiff(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(samples.astype(np.float32), mode="F").save(out, format="TIFF")
    return out.getvalue()


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-3.5, 1200.0)])
def test_float_tiffs_keep_their_content(low, high):
    ramp = np.linspace(low, high, 64, dtype=np.float64)[None, :].repeat(48, 0)
    ramp[10:20, 5:15] = high  # a bright square that must stay visible
    prepared = prepare_image(_float_tiff(ramp))
    assert prepared.normalization == ["float_to_8bit", "reencode_png"]
    gray = _pixels(prepared.data)[..., 0].astype(int)
    expected = np.round((ramp - low) / (high - low) * 255)
    assert np.abs(gray - expected).max() <= 1
    assert gray.max() == 255 and gray.min() == 0


def test_float_tiffs_with_nan_are_rejected():
    samples = np.ones((48, 64))
    samples[3, 3] = np.nan
    with pytest.raises(ImageRejected) as caught:
        prepare_image(_float_tiff(samples))
    assert caught.value.reason == "corrupt_image" and "NaN" in caught.value.detail
