"""prepare_image keeps plain images byte-identical, normalises the rest, and rejects what cannot be used."""

from __future__ import annotations

import hashlib
import io
import pickle

import pytest
from PIL import Image

from got_data.errors import GotDataError
from got_data.ingest import (
    REJECT_REASONS,
    BytesImage,
    ImageRejected,
    InputItem,
    PathImage,
    load_input_image,
    prepare_image,
)
from got_data.ingest.items import MISSING_FILE, URL_NOT_SUPPORTED
from got_data.records.models import ImageInfo
from tests.ingest.bad_images import IMAGE_CASES, OK, H, W, encode, gradient, png_claiming_size

OK_CASES = [c for c in IMAGE_CASES if c.outcome == OK]
REJECT_CASES = [c for c in IMAGE_CASES if c.outcome != OK]


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.path)
def test_usable_images_are_kept_or_normalised_with_each_step_listed(case):
    raw = case.make()
    prepared = prepare_image(raw)
    assert prepared.normalization == list(case.normalization)
    assert (prepared.width, prepared.height) == case.size
    assert prepared.original_sha256 == hashlib.sha256(raw).hexdigest()
    assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()
    if not case.normalization:
        assert prepared.data == raw
        assert prepared.sha256 == prepared.original_sha256
    else:
        assert prepared.data != raw
    stored = Image.open(io.BytesIO(prepared.data))
    assert stored.format == prepared.format
    assert stored.size == (prepared.width, prepared.height)
    assert stored.mode in ("RGB", "L")
    assert prepared.member_ext == {"JPEG": "jpg", "PNG": "png"}[prepared.format]
    pil = prepared.to_pil()
    assert pil.mode == "RGB" and pil.size == case.size


@pytest.mark.parametrize("case", REJECT_CASES, ids=lambda c: c.path)
def test_unusable_images_are_rejected_with_a_stable_reason(case):
    with pytest.raises(ImageRejected) as caught:
        prepare_image(case.make())
    assert caught.value.reason == case.outcome
    assert caught.value.reason in REJECT_REASONS
    assert caught.value.detail
    assert isinstance(caught.value, GotDataError)


def test_reencoding_follows_the_source_kind():
    """Lossy sources stay JPEG (no PNG blow-up), lossless ones stay lossless."""
    by_name = {c.path: prepare_image(c.make()) for c in OK_CASES}
    assert by_name["cmyk.jpg"].format == "JPEG"
    assert by_name["lossy.webp"].format == "JPEG"
    assert by_name["rotated.jpg"].format == "JPEG"
    for name in ("rgba.png", "palette.png", "gray16.png", "lossless.webp", "bitmap.bmp", "scan.tiff", "animated.gif"):
        assert by_name[name].format == "PNG", name


def test_exif_rotation_moves_the_pixels_not_just_the_size():
    raw = next(c for c in IMAGE_CASES if c.path == "rotated.jpg").make()
    upright = prepare_image(raw).to_pil()
    original = Image.open(io.BytesIO(raw)).convert("RGB")
    # orientation 6 = rotate 90 degrees clockwise: the original's top-left corner lands at the top-right.
    assert _close(upright.getpixel((upright.width - 1, 0)), original.getpixel((0, 0)))
    assert not Image.open(io.BytesIO(prepare_image(raw).data)).getexif().get(0x0112)


def test_transparency_is_flattened_onto_white():
    case = next(c for c in IMAGE_CASES if c.path == "rgba.png")
    img = prepare_image(case.make()).to_pil()
    assert img.getpixel((img.width - 1, 0)) == (255, 255, 255)  # the transparent half
    assert img.getpixel((0, img.height - 1)) != (255, 255, 255)


def test_16bit_samples_are_scaled_not_clipped():
    img = prepare_image(next(c for c in IMAGE_CASES if c.path == "gray16.png").make()).to_pil().convert("L")
    values = sorted(set(img.tobytes()))
    assert values[0] == 0 and values[-1] > 200 and len(values) > 100


def test_cmyk_colours_survive_conversion():
    red = Image.new("RGB", (32, 32), (255, 0, 0)).convert("CMYK")
    r, g, b = prepare_image(encode(red, "JPEG")).to_pil().getpixel((16, 16))
    assert r > 240 and g < 15 and b < 15


def test_pixel_limit_is_checked_on_the_header_before_decoding():
    raw = encode(gradient(), "PNG")
    with pytest.raises(ImageRejected) as caught:
        prepare_image(raw, max_pixels=W * H - 1)
    assert caught.value.reason == "too_many_pixels"
    assert prepare_image(raw, max_pixels=W * H).normalization == []
    # A header claiming 100M pixels with no pixel data: rejected on the header, never decoded.
    with pytest.raises(ImageRejected) as caught:
        prepare_image(png_claiming_size(10_000, 10_000))
    assert caught.value.reason == "too_many_pixels"


def test_a_raised_pixel_limit_is_honoured_and_pils_guard_never_lowered():
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 1_000_000_000
        with pytest.raises(ImageRejected):
            prepare_image(encode(gradient(), "PNG"), max_pixels=100)
        assert Image.MAX_IMAGE_PIXELS == 1_000_000_000
        Image.MAX_IMAGE_PIXELS = 1000
        # Our limit allows 100M pixels: PIL's guard is raised to match, so the fake header gets past
        # the header checks and fails only where its pixel data is missing.
        with pytest.raises(ImageRejected) as caught:
            prepare_image(png_claiming_size(10_000, 10_000), max_pixels=200_000_000)
        assert caught.value.reason == "truncated_image"
        assert Image.MAX_IMAGE_PIXELS == 200_000_000
    finally:
        Image.MAX_IMAGE_PIXELS = saved


@pytest.mark.parametrize(
    ("size", "min_side", "max_aspect", "reason"),
    [((7, 100), 8, 100.0, "too_small"), ((8, 100), 8, 100.0, None), ((1000, 9), 8, 100.0, "extreme_aspect_ratio"),
     ((1000, 10), 8, 100.0, None), ((300, 10), 8, 20.0, "extreme_aspect_ratio")],
)
def test_geometry_limits_are_configurable(size, min_side, max_aspect, reason):
    raw = encode(Image.new("RGB", size, (10, 20, 30)), "PNG")
    if reason is None:
        assert prepare_image(raw, min_side=min_side, max_aspect=max_aspect).normalization == []
    else:
        with pytest.raises(ImageRejected) as caught:
            prepare_image(raw, min_side=min_side, max_aspect=max_aspect)
        assert caught.value.reason == reason


def test_rejections_and_prepared_images_survive_pickling():
    """Ray ships both between processes."""
    error = pickle.loads(pickle.dumps(ImageRejected("truncated_image", "cut at byte 300")))
    assert (error.reason, error.detail) == ("truncated_image", "cut at byte 300")
    prepared = prepare_image(encode(gradient(), "JPEG"))
    assert pickle.loads(pickle.dumps(prepared)) == prepared


def test_image_info_matches_the_record_schema():
    prepared = prepare_image(next(c for c in IMAGE_CASES if c.path == "rotated.jpg").make())
    info = prepared.image_info("image", prepared.member_ext)
    assert info == ImageInfo(
        role="image", member="jpg", sha256=prepared.sha256, width=H, height=W, format="JPEG",
        original_sha256=prepared.original_sha256, normalization=["exif_transpose", "reencode_jpeg"],
    )


def test_load_input_image_turns_every_failure_into_a_reason(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(encode(gradient(), "JPEG"))
    item = InputItem(input_ref="a.jpg", dataset="d", image=PathImage(str(path)))
    assert load_input_image(item).data == path.read_bytes()
    path.unlink()
    with pytest.raises(ImageRejected) as caught:
        load_input_image(item)
    assert caught.value.reason == MISSING_FILE
    url_item = InputItem(input_ref="m#row=0", dataset="d", image=None, problem=(URL_NOT_SUPPORTED, "http://x"))
    with pytest.raises(ImageRejected) as caught:
        load_input_image(url_item)
    assert caught.value.reason == URL_NOT_SUPPORTED
    with pytest.raises(ImageRejected) as caught:
        load_input_image(InputItem(input_ref="s#k", dataset="d", image=BytesImage(b"")))
    assert caught.value.reason == "empty_file"



def _close(a, b, tolerance=12):
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.path)
@pytest.mark.parametrize("store_as", ["png", "jpeg"])
def test_one_stored_format_per_run_reencodes_only_the_other_format(case, store_as):
    """store_as (the spec's image_format) gives every image the same format and so one member name."""
    raw = case.make()
    kept = prepare_image(raw)
    prepared = prepare_image(raw, store_as=store_as)
    fmt = {"png": "PNG", "jpeg": "JPEG"}[store_as]
    assert prepared.format == Image.open(io.BytesIO(prepared.data)).format == fmt
    assert prepared.member_ext == {"png": "png", "jpeg": "jpg"}[store_as]
    if kept.format == fmt:
        assert prepared == kept  # the same bytes and steps as without a run format
    else:
        steps = [s for s in kept.normalization if not s.startswith("reencode_")]
        assert prepared.normalization == steps + [f"reencode_{store_as}"]
        assert prepared.original_sha256 == kept.original_sha256
        assert (prepared.width, prepared.height) == (kept.width, kept.height)
        if store_as == "png" and not kept.normalization:  # lossless: exactly the input's decoded pixels
            assert prepared.to_pil().tobytes() == kept.to_pil().tobytes()


def test_an_unknown_stored_format_is_a_spec_error():
    with pytest.raises(GotDataError, match="image_format"):
        prepare_image(encode(gradient(), "PNG"), store_as="webp")  # type: ignore[arg-type]
