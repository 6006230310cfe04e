"""Crops of an edit region: the box's pixels, widened to what a Qwen-VL processor accepts."""

import pytest
import ray
from PIL import Image

from got_data.annotate.crops import crop_rects, crop_region
from got_data.records import WHOLE_IMAGE, Box
from got_data.records.boxes import MAX_CROP_ASPECT, MIN_CROP_SIDE, crop_pixels, union_box


def test_plain_box_is_cut_as_is():
    assert crop_pixels(Box(x1=250, y1=500, x2=750, y2=999), 400, 200) == (100, 100, 300, 200)
    assert crop_pixels(WHOLE_IMAGE, 400, 200) == (0, 0, 400, 200)


def test_tiny_and_thin_boxes_are_widened_inside_the_image():
    x1, y1, x2, y2 = crop_pixels(Box(x1=0, y1=0, x2=1, y2=1), 400, 200)
    assert (x1, y1) == (0, 0) and x2 - x1 == MIN_CROP_SIDE and y2 - y1 == MIN_CROP_SIDE
    x1, y1, x2, y2 = crop_pixels(Box(x1=0, y1=990, x2=999, y2=999), 1000, 1000)  # a 1000x9 strip at the bottom
    assert y2 <= 1000 and (x2 - x1) / (y2 - y1) <= MAX_CROP_ASPECT
    x1, y1, x2, y2 = crop_pixels(Box(x1=10, y1=10, x2=20, y2=20), 20, 20)  # image smaller than the minimum
    assert (x1, y1, x2, y2) == (0, 0, 20, 20)


def test_local_crop_and_union():
    image = Image.new("RGB", (200, 100))
    assert crop_region(image, image.size, Box(x1=500, y1=0, x2=999, y2=999)).size == (100, 100)
    assert union_box([Box(x1=10, y1=50, x2=20, y2=60), Box(x1=5, y1=70, x2=15, y2=80)]) == Box(x1=5, y1=50, x2=20, y2=80)


@ray.remote(num_cpus=0)
def _lost_image():
    raise RuntimeError("the image's object is gone")


@pytest.mark.engine
@pytest.mark.parametrize("count", [1, 3])
def test_crops_of_an_object_store_image_are_cut_where_it_is_fetched_in_order(ray_session, count):
    """No task per crop: `crop_rects` names the rectangles, and the engine actor's fetch (one get of the
    image for all its crops) cuts them; a lost image fails only the requests that need it."""
    import asyncio

    from got_data.engines.actor import EngineActor
    from got_data.engines.types import ImageCrop, ModelRequest

    image = Image.new("RGB", (200, 100))
    image.paste((255, 0, 0), (0, 0, 50, 50))
    ref = ray.put(image)
    rects = [(0, 0, 50, 50), (60, 10, 200, 100), (10, 20, 30, 90)][:count]
    crops = crop_rects(ref, rects)
    assert crops == [ImageCrop(ref, rect) for rect in rects]
    assert crop_rects(ref, []) == []
    lost = ImageCrop(_lost_image.remote(), (0, 0, 1, 1))
    actor = EngineActor.__new__(EngineActor)
    requests = [ModelRequest(id=str(n), messages=[]) for n in range(2)]
    fetched, failed = asyncio.run(actor._fetch_images(requests, [[*crops, ref], [crops[0], lost]]))
    assert [crop.size for crop in fetched[:-1]] == [(x2 - x1, y2 - y1) for x1, y1, x2, y2 in rects]
    assert fetched[0].getpixel((0, 0)) == (255, 0, 0) and fetched[-1].size == (200, 100)
    assert isinstance(failed, dict) and failed["ok"] is False
