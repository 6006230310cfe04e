"""Shared pieces of the replay tests: a pool stand-in that only describes its model."""

from got_data.annotate.runner import static_provenance


class FakePool:
    """What the runner asks a pool about its model, for provenance; it serves no request."""

    def __init__(self, family):
        self.family = family

    def model_info(self):
        return {"name": "replay", "revision": "r1", "family": self.family}


def replay_provenance(spec, stages, vlm_family):
    """The run's static provenance as the runner builds it, for replayed vlm/llm pools."""
    return static_provenance(spec, stages, {"vlm": FakePool(vlm_family), "llm": FakePool("qwen2")})
