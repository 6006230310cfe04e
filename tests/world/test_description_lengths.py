"""The real edit specs ask for comprehensive descriptions and detailed crop descriptions (the paper's
wording), the world specs keep the short prompts their trained models learned: on one world set the
oracle, answering each prompt as asked, gives longer texts under the real spec, and the fidelity
scores report those lengths."""

from __future__ import annotations

import pytest

from got_data.eval.fidelity import score_run
from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import WORLD_SPECS, for_world_scenes, read_truth, write_world_set

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("kind", ["edit", "multiturn"])
def test_the_real_spec_reaches_longer_descriptions_than_the_world_spec(ray_session, tmp_path, kind):
    path = write_world_set(tmp_path / "set", kind, 4, seed=21, objects=3)
    truth = read_truth(tmp_path / "set")
    scores = {}
    for name, spec in (("world", load_spec(WORLD_SPECS[kind])), ("real", for_world_scenes(load_spec(f"{kind}.yaml")))):
        annotate_with_oracle(spec, kind, path, truth, tmp_path / name)
        scores[name] = score_run(tmp_path / name, tmp_path / "set")
        assert scores[name]["records"] == 4, scores[name]
    assert scores["world"]["description_sentences"] == 1.0  # one summary sentence each
    assert scores["real"]["description_sentences"] > 2.0  # every object (three before the edits), then the background
    assert scores["real"]["description_words"] > scores["world"]["description_words"]
    assert scores["real"]["crop_description_words"] > scores["world"]["crop_description_words"]
