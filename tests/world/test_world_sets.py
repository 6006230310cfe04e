"""The world generator: deterministic, self-consistent truth (boxes on the pixels; unique phrases unless repeats are asked for)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from got_data.errors import InputError
from got_data.world.edits import EDIT_KINDS, WHOLE_IMAGE_PHRASE, random_sequence
from got_data.world.scene import (
    BACKGROUNDS,
    COLORS,
    IMAGE_SIZES,
    location_words,
    random_scene,
    with_article,
    with_position_ramp,
)
from got_data.world.sets import edit_from_dict, edit_to_dict, read_truth, write_world_set


def test_same_seed_same_set_other_seed_other_set(tmp_path):
    write_world_set(tmp_path / "a", "edit", 6, seed=3)
    write_world_set(tmp_path / "b", "edit", 6, seed=3)
    write_world_set(tmp_path / "c", "edit", 6, seed=4)
    assert (tmp_path / "a/truth.jsonl").read_text() == (tmp_path / "b/truth.jsonl").read_text()
    assert (tmp_path / "a/truth.jsonl").read_text() != (tmp_path / "c/truth.jsonl").read_text()
    assert (tmp_path / "a/pairs/00002/target.png").read_bytes() == (tmp_path / "b/pairs/00002/target.png").read_bytes()


def test_sizes_cover_both_orientations_and_exceed_the_model_budget():
    assert any(w > h for w, h in IMAGE_SIZES) and any(h > w for w, h in IMAGE_SIZES)
    assert any(w * h > 224 * 224 for w, h in IMAGE_SIZES)


def _painted(color: tuple[int, int, int], width: int, height: int) -> np.ndarray:
    """What a whole picture of one colour looks like once the position ramp is on it."""
    return with_position_ramp(np.full((height, width, 3), color, dtype=np.uint8)).astype(int)


@pytest.mark.parametrize("seed", range(20))
def test_truth_boxes_sit_on_the_object_pixels(seed):
    scene = random_scene(random.Random(seed))
    pixels = np.asarray(scene.render()).astype(int)
    background = _painted(BACKGROUNDS[scene.background], scene.width, scene.height)
    phrases = [o.phrase for o in scene.objects]
    assert 1 <= len(phrases) <= 4 and len(set(phrases)) == len(phrases)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        assert 0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height
        painted = _painted(COLORS[obj.color], scene.width, scene.height)
        colored = np.all(pixels == painted, axis=-1)
        inside = colored[y1:y2, x1:x2]
        assert inside.mean() > 0.4  # the shape fills its box (a triangle half of it)
        ys, xs = np.nonzero(inside)
        assert xs.min() <= 1 and xs.max() >= inside.shape[1] - 2  # touches both sides: the box is tight
        outside = colored.copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any() or any(o.color == obj.color and o is not obj for o in scene.objects)
        assert f"{obj.phrase} is {location_words(obj.box, scene.width, scene.height)}" in scene.description()
        assert obj.phrase in scene.summary() and obj.phrase in scene.prompt()
    assert np.all(pixels[0, 0] == background[0, 0]) or any(o.box[0] == 0 and o.box[1] == 0 for o in scene.objects)


def test_the_position_ramp_runs_red_across_and_blue_down():
    scene = random_scene(random.Random(1), size=(320, 240), count=1)
    pixels = np.asarray(scene.render()).astype(int)
    top_left, top_right, bottom_left = pixels[0, 0], pixels[0, -1], pixels[-1, 0]
    assert top_right[0] > top_left[0] and top_right[2] == top_left[2]
    assert bottom_left[2] > top_left[2] and bottom_left[0] == top_left[0]


def test_a_set_with_a_fixed_object_count_and_the_default_sets_unchanged_by_it(tmp_path):
    write_world_set(tmp_path / "one", "t2i", 12, seed=5, objects=1)
    assert all(len(row["scene"]["objects"]) == 1 for row in read_truth(tmp_path / "one").values())
    write_world_set(tmp_path / "a", "t2i", 6, seed=5)
    write_world_set(tmp_path / "b", "t2i", 6, seed=5, objects=None)
    assert (tmp_path / "a/truth.jsonl").read_text() == (tmp_path / "b/truth.jsonl").read_text()
    assert (tmp_path / "a/truth.jsonl").read_text() != (tmp_path / "one/truth.jsonl").read_text()


@pytest.mark.parametrize("kind", sorted(EDIT_KINDS))
def test_every_edit_kind_changes_the_picture_and_names_its_object(kind):
    rng = random.Random(kind)
    edit = None
    while edit is None:
        edit = EDIT_KINDS[kind](rng, random_scene(rng, count=3))
    assert edit.before.render().tobytes() != edit.after.render().tobytes()
    if edit.obj == WHOLE_IMAGE_PHRASE:
        assert edit.region.as_tuple() == (0, 0, 999, 999)
    else:
        assert edit.obj in edit.instruction
        scene = edit.after if kind == "add" else edit.before
        (edited,) = scene.find(edit.obj)  # an edit names exactly one object
        assert edit.region == scene.rel_box(edited)
    if kind == "replace":
        assert edit.new_object in edit.instruction and len(edit.after.find(edit.new_object)) == 1
    assert edit_from_dict(edit_to_dict(edit)) == edit


def test_sequence_turns_name_distinct_objects_and_chain_scenes():
    rng = random.Random(5)
    for _ in range(30):
        edits = random_sequence(rng, random_scene(rng), 3)
        assert len({e.obj for e in edits}) == 3 and len({e.instruction for e in edits}) == 3
        assert all(a.after == b.before for a, b in zip(edits, edits[1:]))


def test_written_sets_are_pipeline_inputs_with_truth_per_input_ref(tmp_path):
    images = write_world_set(tmp_path / "t", "t2i", 5, seed=1)
    truth = read_truth(tmp_path / "t")
    assert sorted(p.name for p in images.iterdir()) == sorted(truth)
    for ref, row in truth.items():
        with Image.open(images / ref) as im:
            assert im.size == (row["scene"]["width"], row["scene"]["height"])
    manifest = write_world_set(tmp_path / "m", "multiturn", 4, seed=1)
    truth = read_truth(tmp_path / "m")
    assert sorted(truth) == [f"sequences.jsonl#row={n}" for n in range(4)] and manifest.is_file()
    assert all(2 <= len(row["edits"]) <= 3 for row in truth.values())


def test_unknown_kind_and_missing_truth_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="unknown world set kind"):
        write_world_set(tmp_path, "video", 1)
    with pytest.raises(InputError, match="got-data world make"):
        read_truth(tmp_path / "nowhere")


def test_scenes_with_repeated_objects_say_how_many(tmp_path):
    rng = random.Random(8)
    for _ in range(20):
        scene = random_scene(rng, repeats=True)
        counts = {p: len(scene.find(p)) for p in scene.phrases()}
        repeated = [p for p, n in counts.items() if n > 1]
        assert len(repeated) == 1 and counts[repeated[0]] in (2, 3), counts
        assert f"{('two', 'three')[counts[repeated[0]] - 2]} {repeated[0]}s" in scene.prompt()
        assert scene.description().count(with_article(repeated[0]).capitalize()) == counts[repeated[0]]
    write_world_set(tmp_path / "set", "t2i", 4, seed=1, repeats=True)
    truth = read_truth(tmp_path / "set")
    assert all(len(row["scene"]["objects"]) > len({o["phrase"] for o in row["scene"]["objects"]}) for row in truth.values())
    with pytest.raises(InputError, match="t2i world set"):
        write_world_set(tmp_path / "edit", "edit", 2, repeats=True)



def test_the_three_world_specs_ask_for_the_same_models():
    # start_world_pools starts one pool per role from t2i-world.yaml's settings and serves every world
    # spec with it: an edit spec that needs a longer context than the t2i spec's pool gives would fail.
    from got_data.spec import load_spec
    from got_data.world.sets import WORLD_SPECS

    models = {kind: load_spec(name).models for kind, name in WORLD_SPECS.items()}
    assert models["edit"] == models["t2i"] and models["multiturn"] == models["t2i"]
