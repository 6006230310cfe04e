"""The world VLM's dense training signals: per-token targets from a scene's label mask, the image
tokens under an answer's box, and the attention loss on them."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from PIL import Image

from got_data.world.scene import COLORS, SHAPES, Scene, Shape
from got_data.world.vision_phase import probe_loss, token_targets, vision_sample

BOUNDS = {"min_pixels": 3136, "max_pixels": 12544}


def _scene() -> Scene:
    # 112x112: a 4x4 grid of 28-pixel tokens; the square fills the top-left 2x2 tokens exactly
    return Scene(width=112, height=112, background="gray",
                 objects=(Shape(color="green", shape="square", box=(0, 0, 56, 56)),
                          Shape(color="red", shape="circle", box=(84, 84, 112, 112))))


def test_tokens_under_an_object_name_it_and_its_box_and_the_rest_say_none():
    scene = _scene()
    targets = token_targets(scene, np.asarray(scene.label_mask()), placed=True)
    square = [0, 1, 4, 5]
    for i in range(16):
        if i in square:
            assert (targets.color[i], targets.shape[i]) == (list(COLORS).index("green"), list(SHAPES).index("square"))
            assert targets.box[i] == (0.0, 0.0, 0.5, 0.5)
        elif i == 15:  # the circle covers ~79% of its token
            # relative boxes stop at 999
            assert targets.color[i] == list(COLORS).index("red") and targets.box[i] == (0.75, 0.75, 0.999, 0.999)
        else:
            assert targets.color[i] == len(COLORS) and targets.shape[i] == len(SHAPES) and targets.box[i] is None
    assert targets.place[0] == (0.125, 0.125) and targets.place[15] == (0.875, 0.875)
    crop = token_targets(scene, np.asarray(scene.label_mask()), placed=False)
    assert crop.color == targets.color and set(crop.box) == {None} and set(crop.place) == {None}


def test_vision_samples_come_at_the_model_size_with_one_target_per_token():
    rng = random.Random(3)
    for _ in range(20):
        image, targets = vision_sample(rng, BOUNDS)
        assert image.width % 28 == 0 and image.height % 28 == 0 and image.width * image.height <= 12544
        assert len(targets.color) == (image.width // 28) * (image.height // 28)


def test_probe_loss_is_lower_for_right_outputs():
    torch = pytest.importorskip("torch")
    scene = _scene()
    targets = token_targets(scene, np.asarray(scene.label_mask()), placed=True)
    right = torch.full((16, 7 + 5 + 3 + 4 + 2), -20.0)
    for i in range(16):
        right[i, targets.color[i]] = right[i, 7 + targets.shape[i]] = right[i, 12 + targets.background[i]] = 20.0
        right[i, 15:19] = torch.tensor(targets.box[i] or (0, 0, 0, 0))
        right[i, 19:21] = torch.tensor(targets.place[i])
    assert probe_loss(right, [targets]).item() < 1e-3
    assert probe_loss(torch.zeros_like(right), [targets]).item() > 1.0


def _ground_example(answer: str):
    from got_data.annotate.gateway import request_messages
    from got_data.world.oracle import Example

    messages = request_messages(None, "find the green square", image_count=1)
    return Example(stage="ground", key="", messages=messages, images=[Image.new("RGB", (112, 112))], answer=answer,
                   regex=None, json_schema=None)


@pytest.fixture(scope="module")
def encoder():
    from got_data.engines.tiny_models import build_tokenizer
    from got_data.families import QWEN2_VL
    from got_data.world.training import ExampleEncoder

    return ExampleEncoder(build_tokenizer(split_digits=True), QWEN2_VL, **BOUNDS)


def test_the_answer_box_picks_the_image_tokens_it_covers(encoder):
    example = _ground_example("(0,0),(500,500)")
    encoded = encoder.encode(example)
    pads = [i for i, t in enumerate(encoded.input_ids) if t == encoder.image_pad]
    assert len(pads) == 16
    (queries, keys), = encoded.attend
    assert keys == [pads[i] for i in (0, 1, 4, 5)]
    answer_from = len(encoded.input_ids) - len([t for t in encoded.labels if t != -100])
    assert queries == list(range(answer_from - 1, len(encoded.input_ids) - 1))  # every position predicting the answer
    small = encoder.encode(_ground_example("(760,760),(790,790)"))  # under a quarter of any token: its centre's
    assert small.attend[0][1] == [pads[15]]
    from dataclasses import replace

    assert encoder.encode(replace(example, stage="recaption")).attend == []


def test_attention_loss_rewards_looking_at_the_box(encoder):
    torch = pytest.importorskip("torch")
    from got_data.world.training import attention_loss

    item = encoder.encode(_ground_example("(0,0),(500,500)"))
    batch = encoder.batch([item])
    length = batch["input_ids"].shape[1]
    on_box = torch.zeros(1, 2, length, length)
    on_box[0, :, :, item.attend[0][1]] = 0.25
    uniform_on_image = torch.zeros(1, 2, length, length)
    pads = (batch["input_ids"][0] == encoder.image_pad).nonzero().squeeze(1)
    uniform_on_image[0, :, :, pads] = 1 / 16
    assert attention_loss((on_box,), (0,), [item]).item() == pytest.approx(0.0, abs=1e-4)
    assert attention_loss((uniform_on_image,), (0,), [item]).item() == pytest.approx(math.log(4), abs=1e-4)


def test_describing_answers_look_at_each_object_while_writing_about_it(encoder):
    from dataclasses import replace

    from got_data.world.training import mention_spans

    answer = ('{"prompt":"a green square and a red circle on a gray background",'
              '"description":"A green square is at the top left. A red circle is at the bottom right. The background is gray."}')
    from got_data.records.boxes import Box

    mentions = [("green square", Box(x1=0, y1=0, x2=500, y2=500)), ("red circle", Box(x1=750, y1=750, x2=999, y2=999))]
    spans = [(answer[a:b], box) for a, b, box in mention_spans(answer, mentions)]
    assert spans == [("a green square", mentions[0][1]), ("A green square is at the top left", mentions[0][1]),
                     ("a red circle", mentions[1][1]), ("A red circle is at the bottom right", mentions[1][1])]
    encoded = encoder.encode(replace(_ground_example(answer), stage="recaption", mentions=mentions))
    pads = [i for i, t in enumerate(encoded.input_ids) if t == encoder.image_pad]
    assert [keys for _, keys in encoded.attend] == [[pads[i] for i in (0, 1, 4, 5)]] * 2 + [[pads[15]]] * 2
    written = encoder.tokenizer.decode([encoded.input_ids[q + 1] for q in encoded.attend[1][0]])
    assert written.strip() == "A green square is at the top left"
