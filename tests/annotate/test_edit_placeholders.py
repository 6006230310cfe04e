"""The in-context assembly's placeholders: numbering, listing, the post-check and the substitution of
the measured boxes (`got_data/annotate/edit_placeholders.py`)."""

from __future__ import annotations

import pytest

from got_data.annotate.edit_placeholders import (
    FINAL_DESCRIPTION,
    INVENTED_BOX,
    REFUSED_GOT,
    SOURCE_DESCRIPTION,
    UNREFERENCED_REGION,
    PlaceholderError,
    PlaceholderTable,
    fill_placeholders,
    listed,
    mark_phrases,
    marked_description,
    unbracketed,
)
from got_data.records import Box, parse_got
from got_data.resources import resource_dir

SOFA, CUP, CAT, CAT_AFTER = (Box(x1=100, y1=400, x2=900, y2=950), Box(x1=10, y1=10, x2=100, y2=100),
                             Box(x1=300, y1=100, x2=600, y2=500), Box(x1=310, y1=110, x2=610, y2=510))
TABLE = PlaceholderTable.of([[("the red sofa", [SOFA])]], {"source": [("grey cat", [CAT])], "final": [("grey cat", [CAT_AFTER])]},
                            "target")
GOOD = ("1. Source image: A grey cat [O1] sleeps on a red sofa.\n2. Edited object: The sofa.\n"
        "3. Edit region: the red sofa [R1].\n4. Change: It turns blue.\n5. Edited image: A grey cat [O2] on a blue sofa.")


def test_placeholders_are_numbered_over_edits_and_descriptions():
    table = PlaceholderTable.of([[("the cup", [CUP]), ("the plate", [SOFA])], [("a lamp", [CAT])]],
                                {"source": [("cup", [CUP])], "final": [("lamp", [CAT]), ("sofa", [SOFA])]}, "turn2")
    assert [[p.ref for p in edit] for edit in table.regions] == [["[R1]", "[R2]"], ["[R3]"]]
    assert [(p.ref, p.image) for p in table.source_objects + table.final_objects] == [
        ("[O1]", "source"), ("[O2]", "turn2"), ("[O3]", "turn2")]
    assert listed(table.regions[0]) == "the cup [R1], the plate [R2]" and listed([]) == "none"


def test_the_measured_boxes_replace_the_placeholders():
    got = fill_placeholders(GOOD, TABLE, 5)
    parsed = parse_got(got.text)
    assert parsed.boxes() == [CAT, SOFA, CAT_AFTER]
    assert "3. Edit region: <|object_ref_start|>the red sofa<|object_ref_end|><|box_start|>(100,400),(900,950)<|box_end|>." in got.text
    assert "[" not in got.text
    assert [(o.phrase, o.image, o.boxes) for o in got.objects] == [("grey cat", "source", [CAT]),
                                                                   ("grey cat", "target", [CAT_AFTER])]
    # a phrase written with a capital at a sentence start still grounds, as written
    capital = GOOD.replace("3. Edit region: the red sofa [R1]", "3. Edit region: The red sofa [R1]")
    assert "<|object_ref_start|>The red sofa<|object_ref_end|>" in fill_placeholders(capital, TABLE, 5).text


def test_an_unreferenced_object_is_left_out_but_a_region_must_be_referenced():
    got = fill_placeholders(GOOD.replace(" [O2]", ""), TABLE, 5)
    assert [o.image for o in got.objects] == ["source"]
    with pytest.raises(PlaceholderError) as info:
        fill_placeholders(GOOD.replace(" [R1]", ""), TABLE, 5)
    assert info.value.reason == UNREFERENCED_REGION and "[R1]" in str(info.value)


@pytest.mark.parametrize("written,reason,says", [
    (GOOD.replace("the red sofa [R1]", "the red sofa (100,400),(900,950)"), INVENTED_BOX, "(100,400)"),
    (GOOD.replace("the red sofa [R1]", "the red sofa [100, 400, 900, 950] [R1]"), INVENTED_BOX, "box itself"),
    (GOOD.replace("the red sofa [R1]", "<|object_ref_start|>the red sofa<|object_ref_end|><|box_start|>(1,1),(5,5)<|box_end|>"),
     INVENTED_BOX, "tokens"),
    (GOOD.replace("the red sofa [R1]", "<ref>the red sofa</ref> [R1]"), INVENTED_BOX, "<ref>"),
    (GOOD.replace("[O2]", "[O3]"), INVENTED_BOX, "[O3] is not a listed placeholder"),
    (GOOD.replace("[O2]", "[R 1]"), INVENTED_BOX, "[R 1]"),
    (GOOD.replace("sleeps on a red sofa.", "sleeps on the red sofa [R1]."), REFUSED_GOT, "twice"),
    (GOOD.replace("A grey cat [O2]", "A grey dog [O2]"), REFUSED_GOT, "directly follow its phrase 'grey cat'"),
    (GOOD.replace("A grey cat [O1]", "A greygrey cat [O1]").replace("grey cat [O1]", "xgrey cat [O1]"), REFUSED_GOT,
     "directly follow"),
    (GOOD.replace("\n5. Edited image", "\n6. Edited image"), REFUSED_GOT, "numbered"),
    (GOOD.split("\n5.")[0], REFUSED_GOT, "5 lines"),
])
def test_the_post_check_fails_an_answer_with_its_reason(written, reason, says):
    with pytest.raises(PlaceholderError) as info:
        fill_placeholders(written, TABLE, 5)
    assert info.value.reason == reason and says in str(info.value), str(info.value)


def test_regions_must_come_in_the_listed_order():
    table = PlaceholderTable.of([[("the cup", [CUP]), ("the plate", [SOFA])]], {}, "target")
    ok = ("1. Source image: A cup.\n2. Edited object: Both.\n3. Edit region: the cup [R1], the plate [R2].\n"
          "4. Change: Gone.\n5. Edited image: Bare.")
    assert parse_got(fill_placeholders(ok, table, 5).text).boxes() == [CUP, SOFA]
    with pytest.raises(PlaceholderError) as info:
        fill_placeholders(ok.replace("the cup [R1], the plate [R2]", "the plate [R2], the cup [R1]"), table, 5)
    assert info.value.reason == REFUSED_GOT and "order" in str(info.value)


def test_control_characters_and_blank_lines_are_cleaned_before_substitution():
    messy = GOOD.replace("The sofa.", "The\x1d sofa.").replace("\n3.", "\n\n  3.")
    got = fill_placeholders(messy, TABLE, 5)
    assert "2. Edited object: The sofa.\n3. Edit region: " in got.text


def test_marking_and_unbracketing():
    assert mark_phrases("A red sofa and a sofa bed.", [("sofa", "[O1]"), ("red sofa", "[O2]")]) == \
        "A red sofa [O2] and a sofa [O1] bed."
    assert mark_phrases("Nothing here.", [("cat", "[O1]")]) == "Nothing here."
    assert unbracketed("Make it blue [R1]") == "Make it blue (R1)"


def test_a_description_in_the_request_carries_its_objects_placeholders_and_no_brackets_of_its_own():
    # the pipeline binds the objects, so the answer's lines 1 and 5 copy them; a posing "[O2]" is made round
    shown = marked_description("A grey cat [O2] sleeps on a red sofa.", TABLE.source_objects)
    assert shown == "A grey cat [O1] (O2) sleeps on a red sofa."
    got = fill_placeholders(GOOD.replace("A grey cat [O1] sleeps on a red sofa.", shown), TABLE, 5)
    assert [(o.phrase, o.image) for o in got.objects] == [("grey cat", "source"), ("grey cat", "target")]


def test_coordinates_copied_from_the_request_are_not_invented():
    written = GOOD.replace("sleeps on a red sofa.", "sleeps on a red sofa at (1,1).")
    given = ("A grey cat sleeps on a red sofa at (1,1).",)
    assert "at (1,1)." in fill_placeholders(written, TABLE, 5, given=given).text
    with pytest.raises(PlaceholderError) as info:
        fill_placeholders(written.replace("(1,1)", "(1,2)"), TABLE, 5, given=given)
    assert info.value.reason == INVENTED_BOX


def test_echoed_control_tokens_are_stripped_and_a_token_joined_by_stripping_cannot_survive():
    got = fill_placeholders(GOOD.replace("The sofa.", "The sofa <|im_end|><|box_<|x|>start|>."), TABLE, 5)
    assert "2. Edited object: The sofa .\n" in got.text and parse_got(got.text).boxes() == [CAT, SOFA, CAT_AFTER]


def test_an_answer_may_write_a_description_by_its_placeholder_once():
    table = TABLE.described("A grey cat sleeps on a red sofa", "A grey cat on a blue sofa.")
    assert table.descriptions == {SOURCE_DESCRIPTION: "A grey cat [O1] sleeps on a red sofa.",
                                  FINAL_DESCRIPTION: "A grey cat [O2] on a blue sofa."}
    short = GOOD.replace("A grey cat [O1] sleeps on a red sofa.", "[D1]").replace("A grey cat [O2] on a blue sofa.", "[D2]")
    assert fill_placeholders(short, table, 5).text == fill_placeholders(GOOD, table, 5).text  # same record either way
    with pytest.raises(PlaceholderError) as info:
        fill_placeholders(short.replace("4. Change: It turns blue.", "4. Change: It turns blue [D1]."), table, 5)
    assert info.value.reason == REFUSED_GOT and "[D1] is written 2 times" in str(info.value)


def test_the_prompt_names_the_description_placeholders_the_code_expands():
    prompt = (resource_dir("prompts") / "assemble_edit.txt").read_text()
    fields, *in_context = prompt.split("[in_context")
    for section in in_context:
        assert f"{SOURCE_DESCRIPTION}: $source_description" in section
        assert f"{FINAL_DESCRIPTION}: $final_description" in section
    # the fields requests (the world LLM learned their wording) name no description placeholder
    assert SOURCE_DESCRIPTION not in fields and FINAL_DESCRIPTION not in fields
