"""The minimum image side is a spec option: the real edit spec refuses world scenes under 512 pixels a
side as `too_small` rejects at decode (source or target), keeps the others, and loses no input."""

from __future__ import annotations

import pytest

from got_data.ingest.images import TOO_SMALL
from got_data.spec import load_spec
from got_data.world.oracle import annotate_with_oracle
from got_data.world.sets import read_truth, write_world_set
from tests.annotate.outputs import outcome

pytestmark = pytest.mark.engine
SIZES = ((512, 512), (640, 480))  # 480 is under edit.yaml's 512


def test_the_real_edit_spec_rejects_images_under_its_minimum_side(ray_session, tmp_path):
    spec = load_spec("edit.yaml")
    assert spec.min_image_side == 512
    path = write_world_set(tmp_path / "set", "edit", 6, seed=3, sizes=SIZES)
    truth = read_truth(tmp_path / "set")
    annotate_with_oracle(spec, "edit", path, truth, tmp_path / "out")
    samples, rejects = outcome(tmp_path / "out")
    small = {ref for ref, row in truth.items()
             if min(row["edits"][0]["before"]["width"], row["edits"][0]["before"]["height"]) < spec.min_image_side}
    assert small and len(small) < len(truth), "the seed must give both sizes"
    assert set(rejects) == small and all(reason == TOO_SMALL for _, reason in rejects.values()), rejects
    assert set(samples) == set(truth) - small
