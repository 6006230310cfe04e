"""The world oracle answers every model stage of every bundled spec: each spec's stages run on a small
world set against oracle pools (through the real gateway, audited), and every input becomes a record
with nothing dropped; multi-turn specs also run a combined-instruction set, the only input their
split stage acts on. Decoding runs in-process (no Ray): this checks answers, not the runner."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from got_data.annotate.decode import _decode_one
from got_data.annotate.gateway import ModelGateway
from got_data.annotate.runner import build_stages, static_provenance
from got_data.annotate.work_items import WORK_KINDS
from got_data.spec import load_spec
from got_data.world.oracle import OraclePool, WorldOracle, open_world_input
from got_data.world.sets import read_truth, write_world_set

BUNDLED = [f"{kind}{size}.yaml" for kind in ("t2i", "edit", "multiturn") for size in ("", "-tiny", "-world")]


def decoded_in_process(item, max_pixels):
    from got_data.annotate.decode import DecodedImage

    images = {}
    for role, source in item.image_sources().items():
        result, model_image = _decode_one(source, 64_000_000, max_pixels, strip_metadata=False)
        images[role] = DecodedImage(result.image, model_image, result.model_size)
    return images


def in_context(spec):
    """The spec assembling edits in context (the world specs keep the prose answer their LLM learned)."""
    for stage in spec.stages:
        if stage.name == "assemble_edit":
            stage.options["mode"] = "in_context"
    return spec


@pytest.mark.parametrize("spec_name,assembly", [(name, None) for name in BUNDLED] +
                         [(f"{kind}-world.yaml", "in_context") for kind in ("edit", "multiturn")])
def test_the_oracle_answers_every_model_stage_of_every_spec(tmp_path, spec_name, assembly):
    spec = in_context(load_spec(spec_name)) if assembly else load_spec(spec_name)
    kind = spec.record_kind
    paths = [write_world_set(tmp_path / "set", kind, 3, seed=5)]
    truth = read_truth(tmp_path / "set")
    if kind == "multiturn":
        paths.append(write_world_set(tmp_path / "combined", kind, 3, seed=5, combined=True))
        truth.update({f"combined/{ref}": row for ref, row in read_truth(tmp_path / "combined").items()})
    vlm = spec.models["vlm"]
    oracle = WorldOracle(truth, pixel_bounds=(vlm.min_pixels, vlm.max_pixels))
    pools = {role: OraclePool(role, oracle, record=True) for role in spec.roles()}
    stages = build_stages(spec, {role: pool.model_info()["family"] for role, pool in pools.items()})
    gateway = ModelGateway(pools, {role: (m.min_pixels, m.max_pixels) for role, m in spec.models.items()})
    provenance = static_provenance(spec, stages, pools)

    async def annotate(item):
        work = WORK_KINDS[kind].from_decoded(item, decoded_in_process(item, vlm.max_pixels), provenance)
        for stage in stages:
            await stage.run(work, gateway)
        return work

    for path in paths:
        for item in open_world_input(kind, path):
            if path.parent.name == "combined":  # both sets number their rows alike: tell the oracle which
                item = dataclasses.replace(item, input_ref=f"combined/{item.input_ref}")
            work = asyncio.run(annotate(item))
            assert work.record is not None and work.dropped == [], (item.input_ref, work.dropped)
    asked = {example.stage for pool in pools.values() for example in pool.recorded}
    # a stage switched off (verify in the world and tiny specs) asks nothing; the full spec asks it
    assert asked == {stage.name for stage in spec.stages if stage.role is not None and stage.options.get("enabled", True)}
