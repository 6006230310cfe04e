"""Stage logic on replayed answers in the exact formats Qwen2-VL and Qwen2.5-VL produce.

Fixtures follow the models' documented formats: Qwen2-VL answers a grounding question with
`<|object_ref_start|>phrase<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>` in relative
[0,1000) coordinates; Qwen2.5-VL answers JSON `{"bbox_2d": [x1, y1, x2, y2], "label": ...}` in pixels
of the image as its processor resized it.
"""

import pytest

from got_data.annotate.answer_schemas import candidate_phrases, entity_schema
from got_data.annotate.grounding import (
    CLAIMED_BY_OTHER_PHRASE,
    NOT_THERE,
    GroundingParseError,
    all_phrases_constraint,
    answer_constraint,
    merge_near_duplicates,
    numbered_phrases,
    parse_qwen2_vl,
    parse_qwen25_vl,
    phrases_of_numbered,
    qwen2_vl_answer,
    resolve_shared_objects,
    split_qwen2_vl_answer,
    split_qwen25_vl_answer,
)
from got_data.families import QWEN2_VL, QWEN25_VL
from got_data.records import Box, rel_to_pixels, smart_resize

QWEN2_VL_ANSWER = "<|object_ref_start|>the red car<|object_ref_end|><|box_start|>(102,531),(398,874)<|box_end|><|im_end|>"
QWEN2_VL_TWO = (
    "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(10,20),(110,220)<|box_end|>"
    "<|box_start|>(500,500),(700,900)<|box_end|>"
)
QWEN25_VL_ANSWER = '```json\n[\n\t{"bbox_2d": [329, 364, 658, 727], "label": "the red car"}\n]\n```'


def test_qwen2_vl_corners_in_the_other_order_denote_the_same_box():
    assert parse_qwen2_vl("(400,300),(100,50)") == [Box(x1=100, y1=50, x2=400, y2=300)]
    assert parse_qwen2_vl("(100,300),(400,50)") == [Box(x1=100, y1=50, x2=400, y2=300)]


def test_qwen2_vl_answer_parses_to_relative_box():
    assert parse_qwen2_vl(QWEN2_VL_ANSWER) == [Box(x1=102, y1=531, x2=398, y2=874)]
    # The same answer with special tokens stripped by detokenization still parses.
    assert parse_qwen2_vl("the red car(102,531),(398,874)") == [Box(x1=102, y1=531, x2=398, y2=874)]
    assert len(parse_qwen2_vl(QWEN2_VL_TWO)) == 2


@pytest.mark.parametrize(
    "answer, reason",
    [("I cannot see it.", "no_box_in_answer"), ("(500,10),(500,90)", "invalid_box"), ("(1,1),(1000,5)", "invalid_box")],
)
def test_qwen2_vl_bad_answers(answer, reason):
    with pytest.raises(GroundingParseError) as info:
        parse_qwen2_vl(answer)
    assert info.value.reason == reason


def test_qwen25_vl_pixels_on_resized_image_land_on_the_right_original_pixels():
    # A 1920x1080 photo: Qwen2.5-VL sees it at 1316x728 and answers in those pixels.
    assert smart_resize(1080, 1920) == (728, 1316)
    (box,) = parse_qwen25_vl(QWEN25_VL_ANSWER, 1920, 1080, None, None)
    assert box == Box(x1=250, y1=500, x2=500, y2=999)
    # Back on the original photo: the second quarter across, the bottom half.
    assert rel_to_pixels(box, 1920, 1080) == (480, 540, 960, 1079)


def test_qwen25_vl_respects_pipeline_pixel_bounds():
    # With max_pixels lowered, the resized copy is smaller: the same relative box needs smaller pixels.
    rh, rw = smart_resize(1080, 1920, max_pixels=256 * 28 * 28)
    answer = f'{{"bbox_2d": [0, 0, {rw // 2}, {rh // 2}], "label": "x"}}'
    (box,) = parse_qwen25_vl(answer, 1920, 1080, None, 256 * 28 * 28)
    assert box == Box(x1=0, y1=0, x2=500, y2=500)


def test_qwen25_vl_unparsable():
    with pytest.raises(GroundingParseError) as info:
        parse_qwen25_vl("the car is on the left", 640, 480, None, None)
    assert info.value.reason == "unparsable_answer"


def test_merge_near_duplicates_keeps_distinct_objects():
    a = Box(x1=100, y1=100, x2=300, y2=300)
    a2 = Box(x1=102, y1=101, x2=301, y2=299)
    b = Box(x1=500, y1=500, x2=700, y2=700)
    assert merge_near_duplicates([a, a2, b]) == [a, b]


def test_candidate_phrases_are_verbatim_and_clause_bound():
    text = "A red kite flies high, above the green field."
    phrases = candidate_phrases(text, max_words=3)
    assert "red kite" in phrases and "the green field" in phrases
    assert all(p in text for p in phrases)
    assert "high above" not in phrases  # crosses the comma
    schema = entity_schema(phrases)
    assert schema["properties"]["entities"]["items"]["enum"] == phrases


def _box(x1, y1, x2, y2):
    return Box(x1=x1, y1=y1, x2=x2, y2=y2)


def test_qwen2_vl_constraint_admits_several_spans_and_not_there():
    import re

    regex = answer_constraint(QWEN2_VL, "red circle (big)", max_boxes=3).regex
    three = [_box(1, 2, 30, 40), _box(500, 500, 600, 600), _box(700, 10, 800, 90)]
    assert re.fullmatch(regex, qwen2_vl_answer("red circle (big)", three))
    assert re.fullmatch(regex, qwen2_vl_answer("red circle (big)", []))  # not there
    assert not re.fullmatch(regex, qwen2_vl_answer("red circle (big)", three + three[:1]))  # over max_boxes
    assert not re.fullmatch(regex, qwen2_vl_answer("blue square", three[:1]))  # another phrase
    assert not re.fullmatch(regex, "(1,2),(30,40)")
    # the single-box answer, for models trained before multi-box grounding
    one_box = answer_constraint(QWEN2_VL, "red circle (big)", max_boxes=3, one_box=True).regex
    assert re.fullmatch(one_box, "(1,2),(30,40)") and not re.fullmatch(one_box, qwen2_vl_answer("red circle (big)", three))
    assert answer_constraint(QWEN25_VL, "dog", 3, one_box=True).json_schema["type"] == "object"


def test_qwen25_vl_constraint_is_a_bounded_list_labelled_with_the_phrase():
    schema = answer_constraint(QWEN25_VL, "dog", max_boxes=4).json_schema
    assert schema["type"] == "array" and (schema["minItems"], schema["maxItems"]) == (0, 4)
    assert schema["items"]["properties"]["label"]["enum"] == ["dog"]
    assert answer_constraint(QWEN25_VL, "dog", 4).regex is None


def test_the_grammar_backend_compiles_both_constraints():
    import json

    import xgrammar as xgr
    from transformers import AutoTokenizer

    from got_data.world.checkpoints import world_models

    tokenizer = AutoTokenizer.from_pretrained(world_models().vlm)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer))
    phrase = "the dog (left)."
    answer = qwen2_vl_answer(phrase, [_box(10, 20, 110, 220), _box(500, 500, 700, 900)])
    matcher = xgr.GrammarMatcher(compiler.compile_regex(answer_constraint(QWEN2_VL, phrase, 8).regex))
    assert all(matcher.accept_token(t) for t in tokenizer(answer, add_special_tokens=False)["input_ids"])
    assert matcher.is_terminated() or matcher.accept_token(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    compiler.compile_json_schema(json.dumps(answer_constraint(QWEN25_VL, phrase, 8).json_schema))
    phrases = [phrase, "a blue square"]
    matcher = xgr.GrammarMatcher(compiler.compile_regex(all_phrases_constraint(QWEN2_VL, phrases, 8).regex))
    answer += qwen2_vl_answer("a blue square", [])
    assert all(matcher.accept_token(t) for t in tokenizer(answer, add_special_tokens=False)["input_ids"])
    compiler.compile_json_schema(json.dumps(all_phrases_constraint(QWEN25_VL, phrases, 8).json_schema))


def test_not_there_in_each_family():
    for answer in (qwen2_vl_answer("dog", []), qwen2_vl_answer("dog", []) + "<|im_end|>"):
        with pytest.raises(GroundingParseError) as info:
            parse_qwen2_vl(answer)
        assert info.value.reason == NOT_THERE
    with pytest.raises(GroundingParseError) as info:
        parse_qwen25_vl("[]", 640, 480, None, None)
    assert info.value.reason == NOT_THERE


def test_qwen25_vl_list_gives_every_instance():
    answer = '[{"bbox_2d":[0,0,100,100],"label":"dog"},{"bbox_2d":[300,300,400,400],"label":"dog"}]'
    assert len(parse_qwen25_vl(answer, 640, 480, None, None)) == 2


def test_one_object_claimed_by_two_phrases_goes_to_the_more_specific():
    dog, other_dog, circle = _box(100, 100, 300, 300), _box(600, 600, 800, 800), _box(400, 0, 500, 100)
    near_dog = _box(102, 101, 301, 299)
    kept, dropped = resolve_shared_objects([("dog", [dog]), ("brown dog", [near_dog])], 0.85)
    assert kept == [("brown dog", [near_dog])] and dropped == [("dog", CLAIMED_BY_OTHER_PHRASE)]
    # the general phrase keeps the instances the specific one does not claim
    kept, dropped = resolve_shared_objects([("dog", [dog, other_dog]), ("brown dog", [near_dog])], 0.85)
    assert kept == [("dog", [other_dog]), ("brown dog", [near_dog])] and dropped == []
    # unrelated phrases on one box both keep it: the text cannot say which is wrong
    kept, dropped = resolve_shared_objects([("red circle", [circle]), ("blue square", [circle])], 0.85)
    assert len(kept) == 2 and dropped == []


def test_one_answer_about_every_phrase_in_the_qwen2_vl_form():
    import re

    phrases = ["dog", "red ball (small)", "cat"]
    regex = all_phrases_constraint(QWEN2_VL, phrases, max_boxes=2).regex
    dogs, ball = [_box(10, 20, 110, 220), _box(500, 500, 700, 900)], [_box(1, 2, 30, 40)]
    answer = qwen2_vl_answer("dog", dogs) + qwen2_vl_answer("red ball (small)", ball) + qwen2_vl_answer("cat", [])
    assert re.fullmatch(regex, answer)
    assert not re.fullmatch(regex, qwen2_vl_answer("red ball (small)", ball) + qwen2_vl_answer("dog", dogs)
                            + qwen2_vl_answer("cat", []))  # the order asked
    got = split_qwen2_vl_answer(answer + "<|im_end|>", phrases)
    assert got[:2] == [dogs, ball] and isinstance(got[2], GroundingParseError) and got[2].reason == NOT_THERE
    # an unconstrained answer that leaves a phrase out: that phrase alone has no box
    missing = split_qwen2_vl_answer(qwen2_vl_answer("dog", dogs), phrases)
    assert missing[0] == dogs and [m.reason for m in missing[1:]] == ["no_box_in_answer"] * 2


def test_one_answer_about_every_phrase_in_the_qwen25_vl_form():
    schema = all_phrases_constraint(QWEN25_VL, ["dog", "cat"], max_boxes=3).json_schema
    assert schema["items"]["properties"]["label"]["enum"] == ["dog", "cat"] and schema["maxItems"] == 6
    answer = ('[{"bbox_2d":[0,0,100,100],"label":"dog"},{"bbox_2d":[320,240,640,480],"label":"dog"},'
              '{"bbox_2d":[0,0,640,480],"label":"bird"}]')
    dog, cat = split_qwen25_vl_answer(answer, ["dog", "cat"], 640, 480, None, None)
    assert len(dog) == 2 and isinstance(cat, GroundingParseError) and cat.reason == NOT_THERE
    failed = split_qwen25_vl_answer("no boxes today", ["dog", "cat"], 640, 480, None, None)
    assert [f.reason for f in failed] == ["unparsable_answer"] * 2


def test_the_numbered_phrase_list_reads_back():
    phrases = ["a dog", "the 2. ball", "cat: grey"]
    assert numbered_phrases(phrases) == "1. a dog\n2. the 2. ball\n3. cat: grey"
    assert phrases_of_numbered(numbered_phrases(phrases)) == phrases


def test_one_request_per_image_needs_the_multi_box_answer():
    from pydantic import ValidationError

    from got_data.annotate.stages.ground import GroundOptions

    assert GroundOptions(requests="per_image").requests == "per_image"
    with pytest.raises(ValidationError, match="needs answer: instances"):
        GroundOptions(requests="per_image", answer="one_box")
