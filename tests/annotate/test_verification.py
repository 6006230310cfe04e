"""The verify score from the engine's log-probabilities, the crop margin, and re-grounding's crop and
its way back onto the image (pure logic)."""

import json
import math
from types import SimpleNamespace

import pytest

from got_data.annotate.grounding import GroundingParseError
from got_data.annotate.verification import crop_tag, parse_crop_tag, regrounded_boxes, with_margin, yes_no_margin
from got_data.engines.actor import token_logprobs
from got_data.records import Box
from got_data.records.boxes import crop_pixels


def test_margin_adds_every_spelling_of_yes_and_no():
    first = {"Yes": math.log(0.5), " yes": math.log(0.2), "No": math.log(0.1), "no": math.log(0.05), "Maybe": math.log(0.1)}
    assert yes_no_margin(first) == pytest.approx(0.7 - 0.15)
    assert yes_no_margin({"y": math.log(0.3), "n": math.log(0.6)}) == pytest.approx(-0.3)  # split tokens count
    assert yes_no_margin({"The": 0.0}) == 0.0  # neither among the likeliest: no vote


def test_vllm_logprobs_become_text_keyed_and_same_text_ids_add_up():
    # vLLM's per-position {token id: Logprob(logprob, rank, decoded_token)}
    position = {11: SimpleNamespace(logprob=math.log(0.6), rank=1, decoded_token="Yes"),
                12: SimpleNamespace(logprob=math.log(0.1), rank=2, decoded_token="Yes"),
                13: SimpleNamespace(logprob=math.log(0.2), rank=3, decoded_token="No")}
    (first,) = token_logprobs([position])
    assert first["Yes"] == pytest.approx(math.log(0.7)) and first["No"] == pytest.approx(math.log(0.2))
    assert token_logprobs(None) is None


def test_crop_margin_stays_inside_the_image():
    assert with_margin(Box(x1=100, y1=100, x2=300, y2=200), 0.1) == Box(x1=80, y1=90, x2=320, y2=210)
    assert with_margin(Box(x1=0, y1=950, x2=100, y2=999), 0.5) == Box(x1=0, y1=926, x2=150, y2=999)


# Re-grounding: a box's surroundings cut from the model image, the model's answer about that crop read
# in its family's convention and placed back on the image. The answers below are written the way each
# family writes them about the crop, computed here from the crop's pixels (not with the converters).
def _on_crop_qwen2_vl(pixel_box, rect):
    """The Qwen2-VL span of a pixel box (image pixels) as seen on the crop `rect`: relative to the crop."""
    w, h = rect[2] - rect[0], rect[3] - rect[1]
    x1, y1, x2, y2 = (round((v - o) / s * 1000) for v, o, s in
                      zip(pixel_box, (rect[0], rect[1], rect[0], rect[1]), (w, h, w, h)))
    return f"<|object_ref_start|>dog<|object_ref_end|><|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"


def _on_crop_qwen25_vl(pixel_box, rect):
    """The Qwen2.5-VL item of a pixel box as seen on the crop: pixels of the crop as its processor resizes it."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    w, h = rect[2] - rect[0], rect[3] - rect[1]
    resized_h, resized_w = smart_resize(h, w)
    sx, sy = resized_w / w, resized_h / h
    coords = [round((pixel_box[0] - rect[0]) * sx), round((pixel_box[1] - rect[1]) * sy),
              round((pixel_box[2] - rect[0]) * sx), round((pixel_box[3] - rect[1]) * sy)]
    return json.dumps([{"bbox_2d": coords, "label": "dog"}])


@pytest.mark.parametrize("family,write", [("qwen2-vl", _on_crop_qwen2_vl), ("qwen2.5-vl", _on_crop_qwen25_vl)])
@pytest.mark.parametrize("box,clipped", [
    (Box(x1=10, y1=20, x2=210, y2=220), (True, True, False, False)),  # top left corner: the margin is cut there
    (Box(x1=800, y1=700, x2=990, y2=999), (False, False, True, True)),  # bottom right edge
    (Box(x1=400, y1=300, x2=500, y2=450), (False, False, False, False)),  # inside: the whole margin
])
def test_a_box_found_on_its_surroundings_maps_back_onto_the_image(family, write, box, clipped):
    size = (640, 480)
    wide = with_margin(box, 0.5)
    rect = crop_pixels(wide, *size)
    # the margin is clipped at the image's edges (the last relative coordinate, 999, is the last pixel or
    # so), nowhere else
    assert (rect[0] == 0, rect[1] == 0, rect[2] >= size[0] - 1, rect[3] >= size[1] - 1) == clipped
    assert parse_crop_tag(crop_tag(rect, size)) == (rect, size)
    pixel_box = tuple(v / 1000 * s for v, s in zip(box.as_tuple(), (*size, *size)))
    [found] = regrounded_boxes(write(pixel_box, rect), family, rect, size, (None, None))
    assert found.iou(box) >= 0.97, (found, box)  # the crop is never the whole image: a wrong frame shows


def test_a_crop_tag_is_checked():
    with pytest.raises(ValueError, match="not a crop tag"):
        parse_crop_tag("(1,2),(3,4)")


def test_not_there_on_the_surroundings_is_a_parse_error_the_stage_counts_as_disagreement():
    with pytest.raises(GroundingParseError) as info:
        regrounded_boxes("<|object_ref_start|>dog<|object_ref_end|>", "qwen2-vl", (0, 0, 100, 100), (640, 480),
                         (None, None))
    assert info.value.reason == "not_there"
