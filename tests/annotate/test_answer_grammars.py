"""The JSON grammars the engines constrain answers with accept the answers the stages need.

Compiled by xgrammar as vLLM's xgrammar backend compiles them when the engine actors set
`DISABLE_ANY_WHITESPACE` (no free whitespace, "," and ":" as separators), with the world LLM's
tokenizer, without starting an engine: a grammar that cannot express an answer (a GoT's line
breaks, once) makes every real model's answer wrong in the same way, which no replayed answer shows;
one that holds a layout holds it for every model."""

from __future__ import annotations

import json
import re

import pytest
import xgrammar as xgr

from got_data.annotate.answer_schemas import InContextGotAnswer, in_context_got_schema
from got_data.annotate.edit_placeholders import PlaceholderTable, answer_layout, listed
from got_data.engines.actor import DISABLE_ANY_WHITESPACE
from got_data.records import Box
from got_data.resources import resource_dir
from got_data.world.checkpoints import world_models
from got_data.world.oracle import compact, in_context_answer

GOT = ["1. Source image: [D1]", "2. Edited object: The green square at the bottom left.",
       "3. Edit region: green square [R1].", "4. Change: It turns yellow.", "5. Edited image: [D2]"]
BOX = Box(x1=1, y1=2, x2=3, y2=4)
TABLE = PlaceholderTable.of([[("green square", [BOX])]], {}, "target")
SINGLE = answer_layout(TABLE, False, 80, 80)


@pytest.fixture(scope="module")
def compiler():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(world_models().llm))
    return xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer)), tokenizer.eos_token_id


def accepts(compiler, schema: dict, answer: str) -> bool:
    """Whether the engine's grammar for `schema` lets a model write `answer` and stop there."""
    grammar_compiler, eos = compiler
    matcher = xgr.GrammarMatcher(grammar_compiler.compile_json_schema(
        json.dumps(schema), any_whitespace=not DISABLE_ANY_WHITESPACE,
        separators=(",", ":") if DISABLE_ANY_WHITESPACE else None))
    return matcher.accept_string(answer) and matcher.accept_token(eos) and matcher.is_terminated()


def test_an_in_context_got_can_have_its_lines(compiler):
    answer = compact({"got": GOT, "changes": ["It turns yellow."]})
    InContextGotAnswer.model_validate_json(answer)
    assert accepts(compiler, in_context_got_schema(SINGLE, 1, 80), answer)
    assert not accepts(compiler, in_context_got_schema(SINGLE, 1, 80), json.dumps(json.loads(answer)))  # no free blanks


@pytest.mark.parametrize("broken", [
    [line.replace("3. ", "4. ") for line in GOT],  # misnumbered
    [*GOT[:2], *GOT[3:]],  # a line missing
    [GOT[0], GOT[1].replace("Edited object", "Object"), *GOT[2:]],  # a heading changed
    [GOT[0], GOT[1] + "\n3. Edit region: more", *GOT[2:]],  # a line break inside a line
    [*GOT[:3], '4. Change: It says "hi".', GOT[4]],  # a quote (patterns compile without escapes)
    [*GOT[:2], "3. Edit region: green square.", *GOT[3:]],  # the region's placeholder left out
    [*GOT[:2], "3. Edit region: the square [R1].", *GOT[3:]],  # after another phrase
    [GOT[0], "2. Edited object: The square [R2].", *GOT[2:]],  # a placeholder not listed
    [GOT[0], "2. Edited object: " + "x" * 81, *GOT[2:]],  # longer than max_object_chars
    ["1. Source image: A green square [O1].", *GOT[1:]],  # a description copied: [D1] under the grammar
])
def test_the_grammar_holds_the_layout_and_the_placeholders(compiler, broken):
    assert not accepts(compiler, in_context_got_schema(SINGLE, 1, 80), compact({"got": broken, "changes": ["x"]}))


def test_the_prompts_worked_examples_and_the_oracles_answers_fit_their_grammar(compiler):
    template = (resource_dir("prompts") / "assemble_edit.txt").read_text()
    facts = re.findall(r"^  regions: (.*)$", template, flags=re.MULTILINE)
    examples = re.findall(r"^Example answer: (.*)$", template, flags=re.MULTILINE)
    regions = [[f"{phrase} [R{n}]"] for n, phrase in ((1, "the sofa"), (1, "the man"), (1, "the door"), (2, "a lamp"))]
    assert facts == [r[0] for r in regions] and len(examples) == 3
    tables = [PlaceholderTable.of([[(r[0].rsplit(" [", 1)[0], [BOX])] for r in edits], {}, "target")
              for edits in ([regions[0]], [regions[1]], regions[2:])]
    for example, table in zip(examples, tables):
        edits = len(table.regions)
        layout = answer_layout(table, edits > 1, 240, 240)
        assert accepts(compiler, in_context_got_schema(layout, edits, 240), example)
        prose = [("The door.", "It is painted green."), ("The empty space on the right.", "A lamp appears there.")]
        values = {"edits": "\n".join(f"Edit {n}: x\n  regions: {listed(regions)}"
                                     for n, regions in enumerate(table.regions, start=1))}
        answer = in_context_answer(prose[:edits], values, multiturn=edits > 1)
        assert accepts(compiler, in_context_got_schema(layout, edits, 240), answer)


def test_a_region_phrase_the_pattern_cannot_spell_is_left_free_and_checked(compiler):
    table = PlaceholderTable.of([[('the "odd" sign', [BOX])]], {}, "target")
    layout = answer_layout(table, False, 80, 80)
    assert accepts(compiler, in_context_got_schema(layout, 1, 80),
                   compact({"got": [*GOT[:2], "3. Edit region: the sign [R1].", *GOT[3:]], "changes": ["x"]}))


def test_the_grammar_still_bounds_what_it_bounds(compiler):
    schema = in_context_got_schema(SINGLE, 1, 20)
    assert not accepts(compiler, schema, compact({"got": GOT, "changes": ["It turns yellow, then bright gold."]}))
    assert not accepts(compiler, schema, compact({"got": GOT, "changes": ["one", "two"]}))


def test_region_phrases_are_written_as_listed_joined_by_a_comma_or_and(compiler):
    def region_line(line, table=TABLE):
        answer = compact({"got": [*GOT[:2], line, *GOT[3:]], "changes": ["x"]})
        return accepts(compiler, in_context_got_schema(answer_layout(table, False, 80, 80), 1, 80), answer)

    assert region_line("3. Edit region: green square [R1].")
    assert not region_line("3. Edit region: green square [R1]")  # the layout ends the region with a full stop
    assert not region_line("3. Edit region: agreen square [R1].")
    assert not region_line("3. Edit region: the green square [R1] here.")
    two = PlaceholderTable.of([[("green square", [BOX]), ("red dot", [BOX])]], {}, "target")
    for joined in ("green square [R1], red dot [R2].", "green square [R1] and red dot [R2].",
                   "green square [R1], and red dot [R2]."):
        assert region_line(f"3. Edit region: {joined}", two)
    assert not region_line("3. Edit region: red dot [R2], green square [R1].", two)


def test_prose_cannot_write_a_heading(compiler):
    multi = PlaceholderTable.of([[("the door", [BOX])], [("a lamp", [BOX])]], {}, "turn2")
    layout = answer_layout(multi, True, 80, 80)
    good = ["1. Source image: [D1]", "2. Edit 1: The door. Region: the door [R1]. Change: It is green.",
            "3. Edit 2: The right. Region: a lamp [R2]. Change: A lamp appears.", "4. Final image: [D2]"]
    assert accepts(compiler, in_context_got_schema(layout, 2, 80), compact({"got": good, "changes": ["x", "y"]}))
    bad = [*good[:2], "3. Edit 2: The right. Region: junk. Final image: a lamp [R2]. Change: A lamp appears.", good[3]]
    assert not accepts(compiler, in_context_got_schema(layout, 2, 80), compact({"got": bad, "changes": ["x", "y"]}))
