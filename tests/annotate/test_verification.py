"""The verify score from the engine's log-probabilities, and the crop margin (pure logic)."""

import math
from types import SimpleNamespace

import pytest

from got_data.annotate.verification import with_margin, yes_no_margin
from got_data.engines.actor import token_logprobs
from got_data.records import Box


def test_margin_adds_every_spelling_of_yes_and_no():
    first = {"Yes": math.log(0.5), " yes": math.log(0.2), "No": math.log(0.1), "no": math.log(0.05), "Maybe": math.log(0.1)}
    assert yes_no_margin(first) == pytest.approx(0.7 - 0.15)
    assert yes_no_margin({"y": math.log(0.3), "n": math.log(0.6)}) == pytest.approx(-0.3)  # split tokens count
    assert yes_no_margin({"The": 0.0}) == 0.0  # neither among the likeliest: no vote


def test_vllm_logprobs_become_text_keyed_and_same_text_ids_add_up():
    # vLLM's per-position {token id: Logprob(logprob, rank, decoded_token)}
    position = {11: SimpleNamespace(logprob=math.log(0.6), rank=1, decoded_token="Yes"),
                12: SimpleNamespace(logprob=math.log(0.1), rank=2, decoded_token="Yes"),
                13: SimpleNamespace(logprob=math.log(0.2), rank=3, decoded_token="No")}
    (first,) = token_logprobs([position])
    assert first["Yes"] == pytest.approx(math.log(0.7)) and first["No"] == pytest.approx(math.log(0.2))
    assert token_logprobs(None) is None


def test_crop_margin_stays_inside_the_image():
    assert with_margin(Box(x1=100, y1=100, x2=300, y2=200), 0.1) == Box(x1=80, y1=90, x2=320, y2=210)
    assert with_margin(Box(x1=0, y1=950, x2=100, y2=999), 0.5) == Box(x1=0, y1=926, x2=150, y2=999)
