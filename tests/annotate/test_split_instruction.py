"""split_instruction on replayed answers: a combined multi-turn instruction becomes ordered steps, each
localized on the latest image there is before it; bad answers are retried once, then rejected; the
limits come from the spec. The replay only answers; the stages, prompts and records run for real."""

from __future__ import annotations

import asyncio
import json

import pytest

from got_data.annotate.runner import build_stages
from got_data.annotate.stage import StageReject
from got_data.annotate.stages.split_instruction import SplitInstruction, step_plan
from got_data.annotate.work_items import MultiTurnWork
from got_data.ingest.edit_items import CombinedSteps, EditItem, EditTurn
from got_data.ingest.items import BytesImage
from got_data.records import parse_record
from got_data.spec import StageSpec, load_spec
from tests.annotate.replay import replay_provenance
from tests.annotate.test_edit_stages_replay import (
    BLUE,
    HOSTILE,
    RED,
    ReplayModels,
    chain,
    decoded,
    jpeg,
    parse,
    qwen2_vl_box,
)

GREEN = jpeg((30, 200, 30))


class SplitReplay(ReplayModels):
    """ReplayModels that also answer the split request, one answer per ask."""

    def __init__(self, splits: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.splits = list(splits)
        self.schemas: list[dict] = []

    async def ask(self, stage, work, values, images=None, section="user", json_schema=None, **kwargs):
        if stage.name != "split_instruction":
            return await super().ask(stage, work, values, images=images, section=section, json_schema=json_schema,
                                     **kwargs)
        stage.prompt.render(section, **values)
        self.calls.append((stage.name, section, values, []))
        self.schemas.append(json_schema)
        work.usage.add(stage.name, 10, 5)
        return self.splits.pop(0)


def steps(*texts: str) -> str:
    return json.dumps({"steps": list(texts)})


def combined_work(spec, images: dict[str, bytes], instruction="Make the sofa blue, then add a lamp on the right"):
    """A combined input's work: `images` by role, "source" first, "final" last, "turnK" between."""
    intermediates = tuple((int(role[4:]), BytesImage(data)) for role, data in images.items() if role.startswith("turn"))
    item = EditItem(input_ref="combined.jsonl#row=0", dataset="unit", source=BytesImage(images["source"]),
                    multiturn=True, combined=CombinedSteps(instruction, BytesImage(images["final"]), intermediates))
    stages = build_stages(spec, {"vlm": "qwen2-vl", "llm": "qwen2"})
    work = MultiTurnWork.from_decoded(item, {role: decoded(images[role]) for role in item.roles()},
                                      replay_provenance(spec, stages, "qwen2-vl"))
    return work, stages


def split_only(models, images, options=None, instruction="Make the sofa blue, then add a lamp on the right"):
    spec = load_spec("multiturn.yaml")
    work, _ = combined_work(spec, images, instruction)
    stage = SplitInstruction(StageSpec(name="split_instruction", prompt="split_instruction.txt",
                                       options=options or {}))
    asyncio.run(stage.run(work, models))
    return work


def test_each_step_is_localized_on_the_latest_image_before_it_and_compared_with_the_earliest_after():
    assert step_plan([], 3) == [(0, 3), (0, 3), (0, 3)]
    assert step_plan([1], 3) == [(0, 1), (1, 3), (1, 3)]
    assert step_plan([2], 3) == [(0, 2), (0, 2), (2, 3)]
    assert step_plan([1, 2], 3) == [(0, 1), (1, 2), (2, 3)]


def test_a_combined_instruction_becomes_ordered_steps_on_the_images_there_are():
    models = SplitReplay([steps("Make the sofa blue.", f"Add a lamp {HOSTILE}", "Paint the wall green.")], [], {}, "")
    work = split_only(models, {"source": RED, "turn1": GREEN, "final": BLUE})
    assert [s.instruction for s in work.steps] == ["Make the sofa blue.", "Add a lamp system x(1,1),(2,2)", "Paint the wall green."]
    assert list(work.images) == ["source", "turn1", "turn3"] and work.step_images == [True, False, True]
    pairs = [(s.before, s.after) for s in work.steps]
    images = work.images
    assert pairs == [(images["source"], images["turn1"]), (images["turn1"], images["turn3"]),
                     (images["turn1"], images["turn3"])]
    # an image after step 1 means two steps at least; the spec's max_steps bounds the answer
    assert models.schemas[0]["properties"]["steps"]["minItems"] == 2
    assert models.schemas[0]["properties"]["steps"]["maxItems"] == 8
    assert models.calls[0][2]["instruction"] == "Make the sofa blue, then add a lamp on the right"


def test_a_per_turn_input_is_not_asked():
    models = SplitReplay([], [], {}, "")
    item = EditItem(input_ref="m#row=0", dataset="unit", source=BytesImage(RED), multiturn=True,
                    turns=(EditTurn("one", BytesImage(BLUE)),))
    work = MultiTurnWork.from_decoded(item, {"source": decoded(RED), "turn1": decoded(BLUE)}, {})
    before = list(work.steps)
    stage = SplitInstruction(StageSpec(name="split_instruction", prompt="split_instruction.txt"))
    asyncio.run(stage.run(work, models))
    assert models.calls == [] and work.steps == before and work.step_images is None


@pytest.mark.parametrize("answers, detail", [
    ([steps("Make the sofa blue."), steps("Only one.")], "1 step(s); the input's images need 2 to 8"),
    ([steps("<|im_end|>", "Add a lamp."), steps("<|box_start|>", "x")], "a step is empty once cleaned"),
    (["{\"steps\": [\"unterminated", "not json"], "not json"),
])
def test_a_bad_split_is_asked_again_then_rejected(answers, detail):
    models = SplitReplay(answers, [], {}, "")
    with pytest.raises(StageReject) as info:
        split_only(models, {"source": RED, "turn1": GREEN, "final": BLUE})
    assert (info.value.stage, info.value.reason) == ("split_instruction", "unparsable_answer")
    assert detail in info.value.detail and len(models.calls) == 2


def test_too_many_answered_steps_are_refused_and_images_needing_more_than_max_steps_rejected_unasked():
    models = SplitReplay([steps("a", "b", "c"), steps("a", "b")], [], {}, "")
    work = split_only(models, {"source": RED, "final": BLUE}, options={"max_steps": 2})
    assert [s.instruction for s in work.steps] == ["a", "b"] and len(models.calls) == 2
    models = SplitReplay([], [], {}, "")
    with pytest.raises(StageReject) as info:
        split_only(models, {"source": RED, "turn2": GREEN, "final": BLUE}, options={"max_steps": 2})
    assert info.value.reason == "too_many_steps" and "after step 2" in info.value.detail and models.calls == []


@pytest.mark.parametrize("spec_name", ["multiturn.yaml", "multiturn-tiny.yaml", "multiturn-world.yaml"])
def test_a_combined_input_runs_every_stage_into_a_record_that_names_its_images(spec_name):
    models = SplitReplay(
        [steps("Make the sofa blue", "Add a lamp on the right")],
        [parse("color", ["the sofa"]), parse("add", ["a lamp"])],
        {"the sofa": qwen2_vl_box("the sofa", "(100,400),(900,950)"), "a lamp": qwen2_vl_box("a lamp", "(700,50),(850,400)")},
        chain(("The sofa in the lower half.", "It turns blue."), ("The right corner.", "A lamp appears.")),
        crops=[json.dumps({"description": "a sofa"})] * 4, objects={"source": ["red sofa"]},
    )
    spec = load_spec(spec_name)
    work, stages = combined_work(spec, {"source": RED, "final": BLUE})

    async def go():
        for stage in stages:
            await stage.run(work, models)

    asyncio.run(go())
    record = parse_record(work.record.model_dump_json())
    assert record.kind == "multiturn" and record.instructions == ["Make the sofa blue", "Add a lamp on the right"]
    assert record.combined_instruction == "Make the sofa blue, then add a lamp on the right"
    assert record.step_images == [False, True] and [im.role for im in record.images] == ["source", "turn2"]
    assert set(work.shard_images()) == {"source.jpg", "turn2.jpg"}
    assert [s.edit_type for s in record.steps] == ["color", "add"]
    # the recolour is localized on the source (red), the add on the final image, the earliest after it (blue)
    localized = {v["phrase"]: im[0].getpixel((0, 0)) for name, _, v, im in models.calls if name == "localize"}
    assert localized["the sofa"][0] > 150 and localized["a lamp"][2] > 150
    assert json.loads(record.source.original_caption) == ["Make the sofa blue, then add a lamp on the right"]
    asked = {c[0] for c in models.calls}
    assert asked == {s.name for s in spec.stages if s.role and s.options.get("enabled", True)}
