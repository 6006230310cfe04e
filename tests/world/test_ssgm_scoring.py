"""The box-hit scorer of the SSGM's known-answer check reads the world's own pictures right, and tells an
object in its box from one elsewhere, one in another colour and none."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from got_data.errors import InputError
from got_data.records import parse_got, render_got
from got_data.records.codec import Annotation
from got_data.train.conditioning import resize_pixels
from got_data.world.scene import COLORS, random_scene
from got_data.world.ssgm_fidelity import (
    NO_OBJECT,
    SCENE_SIZE,
    SceneScore,
    candidates,
    colour_at,
    got_with_boxes_of,
    moved_to_far_corner,
    summarize,
)

RESOLUTION = 32


def _scenes(count: int = 24):
    rng = random.Random(11)
    return [random_scene(rng, size=(SCENE_SIZE, SCENE_SIZE), count=1) for _ in range(count)]


def _drawing(scene) -> np.ndarray:
    return resize_pixels(scene.render(), RESOLUTION)


def test_the_true_picture_scores_a_hit_and_the_moved_one_vacates_the_old_box():
    for scene in _scenes():
        obj = scene.objects[0]
        moved = moved_to_far_corner(scene)
        assert colour_at(_drawing(scene), candidates(scene, obj, RESOLUTION)) == obj.color
        assert colour_at(_drawing(moved), candidates(moved, moved.objects[0], RESOLUTION)) == obj.color
        assert colour_at(_drawing(moved), candidates(scene, obj, RESOLUTION)) == NO_OBJECT
        assert colour_at(_drawing(scene.with_objects([])), candidates(scene, obj, RESOLUTION)) == NO_OBJECT


def test_another_colour_in_the_box_is_a_miss():
    for scene in _scenes(8):
        obj = scene.objects[0]
        other = next(name for name in COLORS if name != obj.color)
        recoloured = scene.with_objects([replace(obj, color=other)])
        assert colour_at(_drawing(recoloured), candidates(scene, obj, RESOLUTION)) == other


def test_the_box_moves_to_the_far_corner_and_only_the_box_changes_in_the_got():
    for scene in _scenes():
        obj, moved = scene.objects[0], moved_to_far_corner(scene).objects[0]
        x1, y1, x2, y2 = obj.box
        mx1, my1, mx2, my2 = moved.box
        assert (mx2 - mx1, my2 - my1) == (x2 - x1, y2 - y1)
        assert 0 <= mx1 and 0 <= my1 and mx2 <= scene.width and my2 <= scene.height
        assert mx2 <= x1 or x2 <= mx1 or my2 <= y1 or y2 <= my1  # the new box does not overlap the old
        description = scene.description()
        start = description.index(obj.phrase)
        got, _ = render_got(description, [Annotation(start, start + len(obj.phrase), (scene.rel_box(obj),))])
        moved_got = parse_got(got_with_boxes_of(got, moved_to_far_corner(scene)))
        assert moved_got.plain == description
        assert moved_got.boxes() == [moved_to_far_corner(scene).rel_box(moved)]


def test_moving_needs_one_object_and_an_empty_score_is_refused():
    rng = random.Random(3)
    with pytest.raises(InputError):
        moved_to_far_corner(random_scene(rng, size=(SCENE_SIZE, SCENE_SIZE), count=2))
    with pytest.raises(InputError):
        summarize([])
    rates = summarize([SceneScore("a", "red", "red", "red", NO_OBJECT), SceneScore("b", "red", "blue", NO_OBJECT, "red"),
                       SceneScore("c", "red", "green", "green", NO_OBJECT), SceneScore("d", "red", NO_OBJECT, "red", "red")])
    assert (rates["box_hit_rate"], rates["moved_hit_rate"], rates["vacated_rate"], rates["moved_and_vacated_rate"]) \
        == (0.25, 0.5, 0.5, 0.25)
    assert (rates["object_in_box_rate"], rates["object_moved_rate"]) == (0.75, 0.5)
