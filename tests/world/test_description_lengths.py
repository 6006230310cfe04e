"""The edit specs ask for comprehensive descriptions and detailed crop descriptions (the paper's
wording): on one world set the oracle, answering each prompt as asked, gives multi-sentence
descriptions under the real specs and the world specs alike (the world's bounds a little tighter),
and the fidelity scores report those lengths."""

from __future__ import annotations

import pytest

from got_data.eval.fidelity import score_run
from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import WORLD_SPECS, for_world_scenes, read_truth, write_world_set

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("kind", ["edit", "multiturn"])
def test_the_real_and_world_specs_reach_detailed_descriptions(ray_session, tmp_path, kind):
    # both ask with the detailed prompts (the world specs since the 2026-12-03 retrain), the world's
    # bounds a little tighter (6 sentences, 24-word crops against 8 and 30)
    path = write_world_set(tmp_path / "set", kind, 4, seed=21, objects=3)
    truth = read_truth(tmp_path / "set")
    scores = {}
    for name, spec in (("world", load_spec(WORLD_SPECS[kind])), ("real", for_world_scenes(load_spec(f"{kind}.yaml")))):
        annotate_with_oracle(spec, kind, path, truth, tmp_path / name)
        scores[name] = score_run(tmp_path / name, tmp_path / "set")
        assert scores[name]["records"] == 4, scores[name]
        assert scores[name]["description_sentences"] > 2.0  # every object (three before the edits), then the background
        assert scores[name]["crop_description_words"] > 3.1  # the short prompt's few words reached 3.1
    assert scores["real"]["description_words"] >= scores["world"]["description_words"]
    assert scores["real"]["crop_description_words"] >= scores["world"]["crop_description_words"]
