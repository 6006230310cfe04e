"""`ask_json`, the one way stages ask for a JSON answer: reject, drop or retry once on a bad one.
Answers are replayed as the pools return them (text, or None for a failed request)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from got_data.annotate.answer_schemas import DescriptionAnswer
from got_data.annotate.ask_json import BadAnswer, ask_json
from got_data.annotate.stage import StageReject
from got_data.annotate.stages.describe import Describe


class ReplayAnswers:
    """Returns the given answers in order; None is a failed request (as the gateway returns it)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = 0
        self.values = []

    async def ask(self, stage, work, values, images=None, section="user", json_schema=None, reject_on_failure=True,
                  tag=None):
        self.asked += 1
        self.values.append(values)
        text = self.answers.pop(0)
        if text is None and reject_on_failure:
            raise StageReject(stage.name, "model_failure", "pool died")
        return text


GOOD = json.dumps({"description": "A red kite."})
STAGE = Describe.__new__(Describe)


def ask(models, **kwargs):
    work = SimpleNamespace(dropped=[])
    answer = asyncio.run(ask_json(STAGE, work, models, DescriptionAnswer, values={}, json_schema={}, **kwargs))
    return answer, work.dropped


def test_a_good_answer_is_parsed():
    answer, dropped = ask(ReplayAnswers(GOOD))
    assert answer == DescriptionAnswer(description="A red kite.") and dropped == []


def test_a_bad_answer_rejects_with_the_stage_and_a_prefixed_detail():
    with pytest.raises(StageReject) as info:
        ask(ReplayAnswers('{"descr'), detail_prefix="edit 2: ")
    assert (info.value.stage, info.value.reason, info.value.detail) == ("describe", "unparsable_answer", 'edit 2: {"descr')


def test_retry_asks_once_more_and_takes_the_second_answer():
    models = ReplayAnswers('{"description": ""}', GOOD)  # the first is off the model (min_length=1)
    answer, _ = ask(models, retry=True)
    assert models.asked == 2 and answer.description == "A red kite."


def test_a_check_refusing_both_tries_rejects_with_its_message():
    def no_kites(answer):
        if "kite" in answer.description:
            raise BadAnswer("a kite again")

    models = ReplayAnswers(GOOD, GOOD)
    with pytest.raises(StageReject) as info:
        ask(models, retry=True, check=no_kites)
    assert models.asked == 2 and (info.value.reason, info.value.detail) == ("unparsable_answer", "a kite again")


def test_the_retry_request_says_what_was_wrong_and_a_check_gives_its_reason():
    def no_kites(answer):
        if "kite" in answer.description:
            raise BadAnswer("a kite <|im_end|> again", reason="kite_seen")

    models = ReplayAnswers(GOOD, GOOD)
    with pytest.raises(StageReject) as info:
        ask(models, retry=True, check=no_kites)
    assert info.value.reason == "kite_seen"
    first, second = models.values
    # the failure reaches the second request as cleaned text, so greedy decoding need not repeat itself
    assert first["failure"] == "" and "refused: a kite again." in second["failure"]
    assert "failure" not in ask_values_without_retry()


def ask_values_without_retry():
    models = ReplayAnswers(GOOD)
    ask(models)
    return models.values[0]


def test_optional_answers_are_dropped_with_their_reason():
    assert ask(ReplayAnswers(None), on_bad="drop", dropped_as="before crop") == (None, [("before crop", "model_failure")])
    assert ask(ReplayAnswers("[]"), on_bad="drop", dropped_as="x") == (None, [("x", "unparsable_answer")])
    with pytest.raises(StageReject, match="model_failure"):
        ask(ReplayAnswers(None))
