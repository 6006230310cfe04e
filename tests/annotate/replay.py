"""Shared pieces of the replay tests: a pool stand-in that only describes its model, and the
log-probabilities a model gives a yes/no question, in the shape the engine actor returns them."""

import math

from got_data.annotate.runner import static_provenance


def yes_no_logprobs(p_yes: float) -> list[dict[str, float]]:
    """One answer token's top log-probabilities by token text, as `engines.actor.token_logprobs`
    returns them for a Qwen model answering "Yes" or "No" (plus a little mass on other tokens)."""
    rest = 0.02
    return [{"Yes": math.log(max(p_yes - rest / 2, 1e-9)), "No": math.log(max(1 - p_yes - rest / 2, 1e-9)),
             "The": math.log(rest)}]


class FakePool:
    """What the runner asks a pool about its model, for provenance; it serves no request."""

    def __init__(self, family):
        self.family = family

    def model_info(self):
        return {"name": "replay", "revision": "r1", "family": self.family}


def replay_provenance(spec, stages, vlm_family):
    """The run's static provenance as the runner builds it, for replayed vlm/llm pools."""
    return static_provenance(spec, stages, {"vlm": FakePool(vlm_family), "llm": FakePool("qwen2")})
