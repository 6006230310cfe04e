"""The oracle's answers are in the exact formats the stages constrain and parse (unit level, no Ray)."""

from __future__ import annotations

import json
import random
import re

import pytest

from got_data.annotate.answer_schemas import (
    EditChainAnswer,
    EditParseAnswer,
    InContextGotAnswer,
    RecaptionAnswer,
    ReinstructAnswer,
)
from got_data.annotate.edit_placeholders import PlaceholderTable, fill_placeholders
from got_data.annotate.grounding import NOT_THERE, GroundingParseError, answer_constraint, parse_qwen2_vl, parse_qwen25_vl
from got_data.families import QWEN2_VL, QWEN25_VL
from got_data.world.edits import random_sequence
from got_data.world.oracle import OracleError, WorldOracle
from got_data.world.scene import random_scene
from got_data.world.sets import edit_to_dict, scene_to_dict

SCENE = random_scene(random.Random(3), size=(640, 480), count=3)
EDITS = random_sequence(random.Random(4), SCENE, 3)
TRUTH = {"s.png": {"kind": "t2i", "scene": scene_to_dict(SCENE)},
         "m#row=0": {"kind": "multiturn", "edits": [edit_to_dict(e) for e in EDITS]}}


def ask(oracle, ref, stage, images=(), section="user", tag=None, schema=None, **values):
    context = {"input_ref": ref, "stage": stage, "section": section, "values": values, "tag": tag}
    return oracle.answer(context, list(images), schema)


def test_t2i_answers_parse_and_name_every_object():
    oracle = WorldOracle(TRUTH)
    answer = RecaptionAnswer.model_validate_json(ask(oracle, "s.png", "recaption"))
    assert answer.description == SCENE.description() and " " not in ask(oracle, "s.png", "recaption")[:12]
    assert json.loads(ask(oracle, "s.png", "extract_entities"))["entities"] == [o.phrase for o in SCENE.objects]


@pytest.mark.parametrize("model_size", [(640, 480), (258, 193), (160, 120)])
def test_box_answers_in_both_conventions_decode_to_the_true_box(model_size):
    image = SCENE.render().resize(model_size)
    obj = SCENE.objects[0]
    relative = WorldOracle(TRUTH).box_answer(SCENE, obj.phrase, image)
    assert re.fullmatch(answer_constraint(QWEN2_VL, obj.phrase, 8).regex, relative)
    assert parse_qwen2_vl(relative)[0].iou(SCENE.rel_box(obj)) > 0.99
    bare = WorldOracle(TRUTH).box_answer(SCENE, obj.phrase, image, one_box=True)
    assert re.fullmatch(answer_constraint(QWEN2_VL, obj.phrase, 8, one_box=True).regex, bare)
    assert parse_qwen2_vl(bare) == parse_qwen2_vl(relative)
    bounds = (3136, 50176)
    absolute = WorldOracle(TRUTH, family=QWEN25_VL, pixel_bounds=bounds).box_answer(SCENE, obj.phrase, image)
    assert [item["label"] for item in json.loads(absolute)] == [obj.phrase]
    assert parse_qwen25_vl(absolute, *model_size, *bounds)[0].iou(SCENE.rel_box(obj)) > 0.9


def test_edit_answers_follow_each_turn():
    oracle = WorldOracle(TRUTH)
    for edit in EDITS:
        parsed = EditParseAnswer.model_validate_json(ask(oracle, "m#row=0", "edit_parse", instruction=edit.instruction))
        assert parsed.objects == [edit.obj] and parsed.edit_type == edit.edit_type
        before = ask(oracle, "m#row=0", "crop_describe", tag="before", instruction=edit.instruction, object=edit.obj)
        assert json.loads(before)["description"] == edit.crop_before
    schema = {"properties": {"rewrites": {"maxItems": 2}}}
    rewrites = ReinstructAnswer.model_validate_json(
        ask(oracle, "m#row=0", "reinstruct", schema=schema, instruction=EDITS[0].instruction)).rewrites
    assert rewrites == [EDITS[0].concise, EDITS[0].explicit]
    chain = EditChainAnswer.model_validate_json(ask(oracle, "m#row=0", "assemble_edit", section="user_multiturn"))
    assert [s.change for s in chain.steps] == [e.change for e in EDITS]
    first = json.loads(ask(oracle, "m#row=0", "describe", section="user"))["description"]
    last = json.loads(ask(oracle, "m#row=0", "describe", section="user_after"))["description"]
    assert (first, last) == (SCENE.summary(), EDITS[-1].after.summary())


def test_the_in_context_answer_is_the_numbered_got_with_the_listed_placeholders():
    from got_data.annotate.edit_placeholders import FINAL_DESCRIPTION, SOURCE_DESCRIPTION, listed
    from got_data.records import Box

    box = Box(x1=1, y1=2, x2=3, y2=4)
    before, after = EDITS[0].before, EDITS[-1].after
    table = PlaceholderTable.of([[(e.obj, [box])] for e in EDITS],
                                {"source": [(o.phrase, [box]) for o in before.objects],
                                 "final": [(o.phrase, [box]) for o in after.objects]}, "turn3").described(
        before.summary(), after.summary())
    edits = "\n".join(f"Edit {n}: {e.instruction}\n  regions: {listed(regions)}"
                      for n, (e, regions) in enumerate(zip(EDITS, table.regions), start=1))
    answer = InContextGotAnswer.model_validate_json(ask(
        WorldOracle(TRUTH), "m#row=0", "assemble_edit", section="in_context_multiturn", edits=edits,
        source_description=table.descriptions[SOURCE_DESCRIPTION],
        final_description=table.descriptions[FINAL_DESCRIPTION]))
    assert answer.changes == [e.change for e in EDITS]
    got = fill_placeholders(answer.text(), table, len(EDITS) + 2)
    assert [line.split(":")[0] for line in got.text.splitlines()] == [
        "1. Source image", "2. Edit 1", "3. Edit 2", "4. Edit 3", "5. Final image"]
    assert len(got.objects) == len(before.objects) + len(after.objects)


def test_unknown_inputs_are_oracle_errors_and_absent_phrases_not_there():
    oracle = WorldOracle(TRUTH)
    with pytest.raises(OracleError, match="no truth"):
        ask(oracle, "other.png", "recaption")
    with pytest.raises(GroundingParseError, match=NOT_THERE):
        parse_qwen2_vl(ask(oracle, "s.png", "ground", images=[SCENE.render()], phrase="pink star"))
