"""Fidelity scoring on hand-made records: perfect answers score 1, each kind of mistake costs what it should."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from got_data.eval.fidelity import (
    in_true_order,
    names_object,
    placed_object_scores,
    score_edits,
    score_t2i,
    step_scores,
    word_accuracy,
)
from got_data.records.boxes import Box

TRUTH = {
    "a.png": {"kind": "t2i", "scene": {
        "prompt": "a red circle on a white background",
        "description": "A red circle is at the top left. The background is white.",
        "objects": [{"phrase": "red circle", "rel_box": [0, 0, 500, 500]}]}},
    "b.png": {"kind": "t2i", "scene": {
        "prompt": "a blue square and a green diamond on a gray background",
        "description": "A blue square is on the left. A green diamond is on the right. The background is gray.",
        "objects": [{"phrase": "blue square", "rel_box": [0, 300, 300, 600]},
                    {"phrase": "green diamond", "rel_box": [700, 300, 999, 600]}]}},
}


def t2i_record(ref: str, boxes: dict[str, list[int]]):
    scene = TRUTH[ref]["scene"]
    objects = [SimpleNamespace(phrase=f"the {p}", boxes=[Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3])]) for p, b in boxes.items()]
    return SimpleNamespace(prompt=scene["prompt"], description=scene["description"], objects=objects)


def perfect(ref: str):
    return t2i_record(ref, {o["phrase"]: o["rel_box"] for o in TRUTH[ref]["scene"]["objects"]})


def test_perfect_records_score_one():
    scores = score_t2i({ref: perfect(ref) for ref in TRUTH}, TRUTH)
    assert scores["object_recall"] == scores["object_precision"] == scores["mean_iou"] == scores["iou50_share"] == 1.0
    assert scores["instance_recall"] == scores["instance_precision"] == 1.0
    assert scores["prompt_word_accuracy"] == scores["description_word_accuracy"] == 1.0


def test_a_shifted_box_lowers_iou_and_a_missing_record_lowers_recall():
    shifted = t2i_record("a.png", {"red circle": [250, 0, 750, 500]})  # half the width off: IoU 1/3
    scores = score_t2i({"a.png": shifted, "b.png": perfect("b.png")}, TRUTH)
    assert scores["mean_iou"] == pytest.approx((1 / 3 + 2) / 3, abs=0.01)
    assert scores["iou50_share"] == pytest.approx(2 / 3)
    scores = score_t2i({"b.png": perfect("b.png")}, TRUTH)
    assert scores["object_recall"] == pytest.approx(2 / 3) and scores["object_precision"] == 1.0
    assert scores["description_word_accuracy"] == pytest.approx(0.5)


def test_a_wrongly_named_object_is_a_miss_and_an_extra_object_lowers_precision():
    record = t2i_record("b.png", {"blue square": [0, 300, 300, 600], "red diamond": [700, 300, 999, 600],
                                  "yellow star": [0, 0, 10, 10]})
    scores = score_t2i({"b.png": record}, {"b.png": TRUTH["b.png"]})
    assert scores["object_recall"] == 0.5 and scores["object_precision"] == pytest.approx(1 / 3)


REPEATED = {"r.png": {"kind": "t2i", "scene": {
    "prompt": "two red circles on a white background",
    "description": "A red circle is at the top left. A red circle is on the right. The background is white.",
    "objects": [{"phrase": "red circle", "rel_box": [0, 0, 300, 300]},
                {"phrase": "red circle", "rel_box": [700, 300, 999, 600]}]}}}


def repeated_record(*boxes: list[int]):
    scene = REPEATED["r.png"]["scene"]
    objects = [SimpleNamespace(phrase="red circle", boxes=[Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for b in boxes])]
    return {"r.png": SimpleNamespace(prompt=scene["prompt"], description=scene["description"], objects=objects)}


def test_repeated_objects_are_counted_per_instance():
    both = score_t2i(repeated_record([0, 0, 300, 300], [700, 300, 999, 600]), REPEATED)
    assert both["instance_recall"] == both["instance_precision"] == both["object_recall"] == 1.0
    # one box for two circles: the phrase is found (object recall) but one instance is missing
    one = score_t2i(repeated_record([0, 0, 300, 300]), REPEATED)
    assert one["object_recall"] == 1.0 and one["instance_recall"] == 0.5 and one["instance_precision"] == 1.0
    assert one["iou50_share"] == 0.5
    # the same circle boxed twice, and a box on nothing: each instance counts once
    twice = score_t2i(repeated_record([0, 0, 300, 300], [5, 5, 300, 300], [400, 700, 500, 800]), REPEATED)
    assert twice["instance_recall"] == 0.5 and twice["instance_precision"] == pytest.approx(1 / 3)


def test_word_accuracy_and_object_naming():
    assert word_accuracy("A red circle.", "a red circle") == 1.0
    assert word_accuracy("a blue circle", "a red circle") == pytest.approx(2 / 3)
    assert word_accuracy("", "a red circle") == 0.0
    assert names_object("The red circle at the top left.", "red circle")
    assert not names_object("the red circles", "red circle")


def test_edit_scores_region_object_type_and_steps():
    truth = {"e#row=0": {"kind": "multiturn", "edits": [
        {"obj": "red circle", "edit_type": "color", "region": [0, 0, 500, 500], "instruction": "Make the red circle blue."},
        {"obj": "the whole image", "edit_type": "style", "region": [0, 0, 999, 999],
         "instruction": "Turn the picture black and white."}]}}

    def op(target, edit_type, box, crop=None):
        return SimpleNamespace(target_object=target, edit_type=edit_type, regions=[Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3])],
                               object_description=crop, new_object_description=None)

    def record(*steps):
        return SimpleNamespace(kind="multiturn", steps=list(steps), final_description="A gray circle.", objects=None,
                               source_description="A red circle is at the top. The background is gray.",
                               instructions=["Make the red circle blue.", "Turn the picture black and white."][:len(steps)])

    good = record(op("red circle", "color", [0, 0, 500, 500], "a red circle"), op("the whole image", "style", [0, 0, 999, 999]))
    scores = score_edits({"e#row=0": good}, truth, multiturn=True)
    assert scores["region_mean_iou"] == 1.0 and scores["object_accuracy"] == 1.0 and scores["step_count_accuracy"] == 1.0
    # words 11 and 3, sentences 2 and 1; one crop description of 3 words (the missing one is not counted)
    assert (scores["description_words"], scores["description_sentences"], scores["crop_description_words"]) == (7.0, 1.5, 3.0)
    bad = record(op("blue circle", "add", [500, 500, 999, 999]))
    scores = score_edits({"e#row=0": bad}, truth, multiturn=True)
    assert scores["region_mean_iou"] == 0.0 and scores["object_accuracy"] == 0.0 and scores["edit_type_accuracy"] == 0.0
    assert scores["step_count_accuracy"] == 0.0


def test_a_split_scores_its_step_count_and_order():
    true = ["Make the red circle blue.", "Move the green square to the left.", "Add a star at the top."]
    truth = {f"m#row={n}": {"kind": "multiturn", "combined": True, "edits": [{"instruction": t} for t in true]}
             for n in range(4)}
    records = {
        "m#row=0": SimpleNamespace(instructions=list(true)),  # right
        "m#row=1": SimpleNamespace(instructions=[true[1], true[0], true[2]]),  # right count, wrong order
        "m#row=2": SimpleNamespace(instructions=["Make the red circle blue and move the green square to the left.",
                                                 true[2]]),  # two steps merged
    }  # row 3: no record
    scores = step_scores(records, truth)
    assert scores["step_count_accuracy"] == 0.5 and scores["step_order_accuracy"] == 0.25
    assert scores["combined_inputs"] == 4
    assert 0.25 < scores["step_instruction_word_accuracy"] < 0.75
    assert in_true_order(["make the red circle blue", "move the green square left", "add a star"], true)
    assert not in_true_order(true[:2], true)


def test_placed_objects_score_against_the_scene_of_their_image():
    scene = {"objects": [{"phrase": "red circle", "rel_box": [0, 0, 500, 500]},
                         {"phrase": "blue square", "rel_box": [500, 500, 999, 999]}]}
    after = {"objects": [{"phrase": "green circle", "rel_box": [0, 0, 500, 500]}]}
    truth = {"e#row=0": {"kind": "edit", "edits": [{"before": scene, "after": after}]}}

    def placed(phrase, image, box):
        return SimpleNamespace(phrase=phrase, image=image, boxes=[Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3])])

    record = SimpleNamespace(objects=[placed("the red circle", "source", [0, 0, 500, 500]),
                                      placed("a yellow star", "source", [0, 0, 10, 10]),
                                      placed("the green circle", "target", [0, 0, 500, 250])])
    scores = placed_object_scores({"e#row=0": record}, truth)
    assert scores["placed_object_mean_iou"] == (1.0 + 0.0 + 0.5) / 3  # the star names nothing there
    assert scores["placed_object_recall"] == 2 / 3  # red circle (of 2 on the source), green circle (of 1)
    none = placed_object_scores({"e#row=0": SimpleNamespace(objects=None)}, truth)
    assert none == {"placed_object_mean_iou": None, "placed_object_recall": None}
