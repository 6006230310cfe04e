"""Box converters: pixels <-> relative, Qwen2.5-VL absolute <-> relative through smart_resize."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from got_data.records import Box, pixels_to_rel, qwen25_abs_to_rel, rel_to_pixels, smart_resize
from got_data.records.boxes import rel_to_qwen25_abs


def test_box_invariants():
    with pytest.raises(ValueError, match="outside"):
        Box(x1=0, y1=0, x2=1000, y2=10)
    with pytest.raises(ValueError, match="outside"):
        Box(x1=-1, y1=0, x2=10, y2=10)
    with pytest.raises(ValueError, match="empty"):
        Box(x1=10, y1=0, x2=10, y2=10)
    assert Box.parse(" ( 1 , 2 ),(3,4) ") == Box(x1=1, y1=2, x2=3, y2=4)


def test_pixels_to_rel_known_values():
    # 640x480 image, box covering the right half, bottom half.
    assert pixels_to_rel((320, 240, 640, 480), 640, 480) == Box(x1=500, y1=500, x2=999, y2=999)
    assert pixels_to_rel((0, 0, 64, 48), 640, 480) == Box(x1=0, y1=0, x2=100, y2=100)
    assert rel_to_pixels(Box(x1=500, y1=500, x2=999, y2=999), 640, 480) == (320, 240, 639, 480)


@settings(max_examples=200, deadline=None)
@given(st.integers(16, 4000), st.integers(16, 4000), st.data())
def test_pixels_rel_round_trip_within_one_rel_unit(width, height, data):
    x1 = data.draw(st.integers(0, width - 8))
    y1 = data.draw(st.integers(0, height - 8))
    x2 = data.draw(st.integers(x1 + 8, width))
    y2 = data.draw(st.integers(y1 + 8, height))
    try:
        rel = pixels_to_rel((x1, y1, x2, y2), width, height)
    except ValueError:
        return  # box collapsed at this resolution: allowed to be refused
    back = rel_to_pixels(rel, width, height)
    # One relative unit is width/1000 pixels; rounding twice moves an edge by at most about that.
    for got, want, size in zip(back, (x1, y1, x2, y2), (width, height, width, height)):
        assert abs(got - want) <= math.ceil(size / 1000) + 1


@pytest.mark.parametrize(
    "h, w, expected",
    [
        (480, 640, (476, 644)),  # rounded to multiples of 28, within the pixel bounds
        (1080, 1920, (728, 1316)),  # scaled down under max_pixels
        (10, 10, (56, 56)),  # scaled up to min_pixels
        (4000, 6000, (812, 1204)),
    ],
)
def test_smart_resize_matches_processor_rule(h, w, expected):
    rh, rw = smart_resize(h, w)
    assert (rh, rw) == expected
    assert rh % 28 == 0 and rw % 28 == 0


def test_smart_resize_agrees_with_transformers():
    transformers = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    for h, w in [(480, 640), (1080, 1920), (10, 10), (4000, 6000), (333, 777), (28, 5000)]:
        assert smart_resize(h, w) == transformers.smart_resize(h, w, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)


def test_qwen25_absolute_lands_on_same_pixels():
    # A 1920x1080 photo; the processor resizes it to 1316x728. Qwen2.5-VL answers on that copy.
    h, w = 1080, 1920
    rh, rw = smart_resize(h, w)
    abs_box = (rw / 4, rh / 2, rw / 2, rh)  # second quarter across, bottom half
    rel = qwen25_abs_to_rel(abs_box, w, h)
    assert rel == Box(x1=250, y1=500, x2=500, y2=999)
    assert rel_to_pixels(rel, w, h) == (480, 540, 960, 1079)
    assert rel_to_qwen25_abs(rel, w, h) == (329, 364, 658, 727)


def test_qwen25_clamps_outside_answers():
    rel = qwen25_abs_to_rel((-20, -5, 5000, 5000), 640, 480)
    assert rel == Box(x1=0, y1=0, x2=999, y2=999)
