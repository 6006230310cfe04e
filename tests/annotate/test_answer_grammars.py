"""The JSON grammars the engines constrain answers with accept the answers the stages need.

Compiled by xgrammar as vLLM's xgrammar backend compiles them when the engine actors set
`DISABLE_ANY_WHITESPACE` (no free whitespace, "," and ":" as separators), with the world LLM's
tokenizer, without starting an engine: a grammar that cannot express an answer (a GoT's line
breaks) makes every real model's answer wrong in the same way, which no replayed answer shows."""

from __future__ import annotations

import json

import pytest
import xgrammar as xgr

from got_data.annotate.answer_schemas import InContextGotAnswer, in_context_got_schema
from got_data.engines.actor import DISABLE_ANY_WHITESPACE
from got_data.world.checkpoints import world_models
from got_data.world.oracle import compact

GOT = ("1. Source image: A blue diamond [O1] is in the middle. A green square [O2] is at the bottom left.\n"
       "2. Edited object: The green square at the bottom left.\n3. Edit region: green square [R1].\n"
       "4. Change: It turns yellow.\n5. Edited image: A yellow square [O4] says \"hi\" at the bottom left.")


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
    assert "\\n" in answer and '\\"' in answer
    assert accepts(compiler, in_context_got_schema(1, 80), answer)
    assert not accepts(compiler, in_context_got_schema(1, 80), json.dumps(json.loads(answer)))  # no free blanks


def test_the_grammar_still_bounds_what_it_bounds(compiler):
    schema = in_context_got_schema(1, 20)
    assert not accepts(compiler, schema, compact({"got": GOT, "changes": ["It turns yellow, then bright gold."]}))
    assert not accepts(compiler, schema, compact({"got": GOT, "changes": ["one", "two"]}))
