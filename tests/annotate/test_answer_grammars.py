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
from got_data.annotate.edit_chain import ChainStep, got_layout, multi_turn_got, single_turn_got
from got_data.engines.actor import DISABLE_ANY_WHITESPACE
from got_data.records import Box
from got_data.resources import resource_dir
from got_data.world.checkpoints import world_models
from got_data.world.oracle import compact, in_context_answer

GOT = ["1. Source image: A blue diamond [O1] is in the middle. A green square [O2] is at the bottom left.",
       "2. Edited object: The green square at the bottom left.", "3. Edit region: green square [R1].",
       "4. Change: It turns yellow.", "5. Edited image: [D2]"]
SINGLE = got_layout(1, multiturn=False)


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
])
def test_the_grammar_holds_the_numbered_layout(compiler, broken):
    assert not accepts(compiler, in_context_got_schema(SINGLE, 1, 80), compact({"got": broken, "changes": ["x"]}))


def test_the_prompts_worked_examples_and_the_oracles_answers_fit_the_grammar_and_the_fields_layout(compiler):
    sections = {"in_context": False, "in_context_multiturn": True}
    template = (resource_dir("prompts") / "assemble_edit.txt").read_text()
    examples = re.findall(r"^Example answer: (.*)$", template, flags=re.MULTILINE)
    assert len(examples) == 3
    for example in examples:
        answer = InContextGotAnswer.model_validate_json(example)
        edits, multiturn = len(answer.changes), len(answer.got) != 5
        assert accepts(compiler, in_context_got_schema(got_layout(edits, multiturn), edits, 240), example)
    prose = [("The door.", "It is painted green."), ("The empty space on the right.", "A lamp appears there.")]
    values = {"edits": "Edit 1: x\n  regions: the door [R1]\nEdit 2: y\n  regions: a lamp [R2]"}
    for section, multiturn in sections.items():
        edits = 2 if multiturn else 1
        one = {"edits": "\n".join(values["edits"].splitlines()[:2])}
        answer = in_context_answer(prose[:edits], values if multiturn else one, multiturn=multiturn)
        assert accepts(compiler, in_context_got_schema(got_layout(edits, multiturn), edits, 240), answer)
    # the fields mode writes the same layout (Python's `re` reads the patterns as xgrammar does)
    step = ChainStep("The door.", [("the door", [Box(x1=1, y1=2, x2=3, y2=4)])], "It is painted green.")
    for got, layout in ((single_turn_got("A dog sits.", step, "A dog sits."), got_layout(1, False)),
                        (multi_turn_got("A dog sits.", [step, step], "A dog sits."), got_layout(2, True))):
        lines = got.text.replace("\"", "").splitlines()
        assert len(lines) == len(layout) and all(re.fullmatch(p, line) for p, line in zip(layout, lines))


def test_the_grammar_still_bounds_what_it_bounds(compiler):
    schema = in_context_got_schema(SINGLE, 1, 20)
    assert not accepts(compiler, schema, compact({"got": GOT, "changes": ["It turns yellow, then bright gold."]}))
    assert not accepts(compiler, schema, compact({"got": GOT, "changes": ["one", "two"]}))
