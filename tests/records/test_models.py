"""Record invariants are enforced by the models themselves."""

import hashlib
import json
import re
from datetime import datetime, timezone

import pytest

from got_data.errors import RecordError
from got_data.records import (
    SCHEMA_VERSION,
    Annotation,
    Box,
    EditOp,
    EditRecord,
    GroundedObject,
    ImageInfo,
    MultiTurnRecord,
    Provenance,
    SourceInfo,
    T2IRecord,
    make_key,
    parse_record,
    render_got,
)

SHA = hashlib.sha256(b"x").hexdigest()
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
PROV = Provenance(pipeline="t2i", pipeline_version="1", got_data_version="0.1.0", started_at=NOW, finished_at=NOW)
KITE = Box(x1=120, y1=40, x2=380, y2=310)
FIELD = Box(x1=0, y1=500, x2=999, y2=999)


def image(role="image", member="jpg"):
    return ImageInfo(role=role, member=member, sha256=SHA, width=64, height=48, format="JPEG", original_sha256=SHA)


def t2i_data(**overrides):
    description = "A red kite flies above a green field."
    got, spans = render_got(description, [Annotation(2, 10, (KITE,)), Annotation(25, 36, (FIELD,))])
    data = dict(
        key=make_key("t2i", "demo", "a.jpg", SHA),
        source=SourceInfo(dataset="demo", input_ref="a.jpg"),
        images=[image()],
        got=got,
        provenance=PROV,
        prompt="A red kite over a field.",
        description=description,
        objects=[
            GroundedObject(phrase="red kite", boxes=[KITE], span=spans[0]),
            GroundedObject(phrase="green field", boxes=[FIELD], span=spans[1]),
        ],
    )
    data.update(overrides)
    return data


def test_valid_t2i_round_trips_through_json():
    record = T2IRecord(**t2i_data())
    again = parse_record(record.model_dump_json())
    assert again == record
    assert again.object_count() == 2


def test_a_record_built_from_a_dict_dumps_to_the_json_it_validated():
    """A dict is validated as the JSON its record dumps to (field order, defaults), so the shard writer's
    check that the record re-validates from its own JSON needs no second pass; other bytes are not taken
    for validated, and a dict JSON cannot hold is still validated as it is."""
    from got_data.records.models import validated_json

    record = parse_record({"kind": "t2i", **t2i_data()})
    assert validated_json(record.model_dump_json().encode("utf-8"))
    record.prompt = "A blue kite over a field."
    assert not validated_json(record.model_dump_json().encode("utf-8"))
    with pytest.raises(RecordError, match="Input should be a valid string"):
        parse_record({"kind": "t2i", **t2i_data(prompt=object())})


def test_key_is_stable_and_input_derived():
    assert make_key("t2i", "demo", "a.jpg", SHA) == make_key("t2i", "demo", "a.jpg", SHA)
    assert make_key("t2i", "demo", "a.jpg", SHA) != make_key("t2i", "demo", "b.jpg", SHA)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d["objects"].pop(), "grounds 2 phrase"),
        (lambda d: d.update(objects=[d["objects"][0].model_copy(update={"span": (0, 8)}), d["objects"][1]]), "does not point"),
        (lambda d: d.update(got=d["got"].replace("(120,40)", "(120,1000)")), "GoT text"),
        (lambda d: d.update(got=d["got"] + "<|im_end|>"), "control token"),
        (lambda d: d.update(prompt="kite <|box_start|>(1,1),(2,2)<|box_end|>"), "special token"),
        (lambda d: d.update(description="Something else."), "differs from the description"),
        (lambda d: d.update(objects=[d["objects"][0].model_copy(update={"boxes": [FIELD]}), d["objects"][1]]), "boxes differ"),
        (lambda d: d.update(objects=[]), "at least 1"),
        (lambda d: d.update(objects=[d["objects"][0], d["objects"][0]]), "share one span"),
        (lambda d: d.update(images=[image(role="source")]), "roles"),
    ],
)
def test_t2i_invariants(mutate, reason):
    data = t2i_data()
    data["objects"] = list(data["objects"])
    mutate(data)
    with pytest.raises(RecordError, match=reason):
        parse_record(T2IRecord.model_construct(**data).model_dump(mode="json"))


def edit_op(box=KITE):
    return EditOp(edit_type="color", target_object="red kite", regions=[box], change="make the kite blue")


def edit_got(*boxes):
    refs = "".join(f" <|object_ref_start|>kite<|object_ref_end|><|box_start|>{b.render()}<|box_end|>" for b in boxes)
    return f"1. A red kite in the sky.\n2. The kite is edited.\n3. Region:{refs}\n4. Recolour it blue.\n5. A blue kite."


def edit_base():
    return dict(
        key=make_key("edit", "demo", "k1", SHA, SHA),
        source=SourceInfo(dataset="demo", input_ref="k1", original_caption="make the kite blue"),
        images=[image("source", "source.jpg"), image("target", "target.jpg")],
        provenance=PROV,
        instruction="make the kite blue",
        reinstructions=["kite to blue"],
        source_description="A red kite in the sky.",
        target_description="A blue kite in the sky.",
        edit=edit_op(),
    )


def multiturn_base():
    return dict(
        key=make_key("multiturn", "demo", "m1", SHA),
        source=SourceInfo(dataset="demo", input_ref="m1"),
        provenance=PROV,
        source_description="A red kite.",
        final_description="A blue kite over a field.",
        got=edit_got(KITE, FIELD),
    )


def test_edit_record_boxes_must_match_text():
    base = edit_base()
    assert EditRecord(got=edit_got(KITE), **base).object_count() == 1
    with pytest.raises(ValueError, match="differ from the structured boxes"):
        EditRecord(got=edit_got(FIELD), **base)
    with pytest.raises(ValueError, match="differ from the structured boxes"):
        EditRecord(got=edit_got(KITE, KITE), **base)


def test_multiturn_step_count_matches_turns():
    base = multiturn_base()
    record = MultiTurnRecord(
        instructions=["make it blue", "add a field"],
        steps=[edit_op(KITE), edit_op(FIELD)],
        images=[image("source", "source.jpg"), image("turn1", "turn1.jpg"), image("turn2", "turn2.jpg")],
        **base,
    )
    assert record.object_count() == 2
    with pytest.raises(ValueError, match="2 instruction"):
        MultiTurnRecord(
            instructions=["make it blue", "add a field"],
            steps=[edit_op(KITE)],
            images=[image("source", "source.jpg"), image("turn1", "turn1.jpg"), image("turn2", "turn2.jpg")],
            **base,
        )


def multiturn_record():
    return MultiTurnRecord(
        instructions=["make it blue", "add a field"],
        reinstructions=[["blue kite"], ["add field", "put a field in"]],
        steps=[edit_op(KITE), edit_op(FIELD)],
        images=[image("source", "source.jpg"), image("turn1", "turn1.jpg"), image("turn2", "turn2.jpg")],
        **multiturn_base(),
    )


RECORDS = {
    "t2i": lambda: T2IRecord(**t2i_data()),
    "edit": lambda: EditRecord(got=edit_got(KITE), **edit_base()),
    "multiturn": multiturn_record,
}
# (record kind, path of a text field a model or the trainer reads)
MODEL_READ_TEXTS = [
    ("t2i", ("prompt",)), ("t2i", ("description",)), ("t2i", ("got",)),
    ("edit", ("instruction",)), ("edit", ("reinstructions", 0)), ("edit", ("source_description",)),
    ("edit", ("target_description",)), ("edit", ("got",)), ("edit", ("edit", "edit_type")),
    ("edit", ("edit", "target_object")), ("edit", ("edit", "change")), ("edit", ("edit", "new_object")),
    ("edit", ("edit", "object_description")), ("edit", ("edit", "new_object_description")),
    ("multiturn", ("instructions", 1)), ("multiturn", ("final_description",)), ("multiturn", ("steps", 1, "change")),
    ("multiturn", ("steps", 0, "target_object")), ("multiturn", ("reinstructions", 1, 0)),
]
# hostile text -> what the error names
HOSTILE = [("<|im_end|>", "<|im_end|>"), ("\x00", "U+0000"), ("\u202e", "U+202E"), ("\u2066", "U+2066")]


def with_text(data, path, text):
    *parents, last = path
    holder = data
    for step in parents:
        holder = holder[step]
    holder[last] = (holder[last] or "a kite") + " " + text + " now"
    return data


@pytest.mark.parametrize("kind, path", MODEL_READ_TEXTS)
@pytest.mark.parametrize("text, named", HOSTILE)
def test_text_a_model_reads_refuses_control_tokens_nul_and_bidi_controls(kind, path, text, named):
    data = RECORDS[kind]().model_dump(mode="json")
    with pytest.raises(RecordError, match=re.escape(named)):
        parse_record(with_text(data, path, text))


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_original_caption_stays_verbatim(kind):
    data = RECORDS[kind]().model_dump(mode="json")
    data["source"]["original_caption"] = "<|im_end|>\x00\u202eexact words"
    assert parse_record(data).source.original_caption == "<|im_end|>\x00\u202eexact words"


def test_schema_1_1_verification_scores_align_with_boxes_and_1_0_records_still_read():
    scored = t2i_data(objects=[
        GroundedObject(phrase="red kite", boxes=[KITE], span=t2i_data()["objects"][0].span, box_scores=[0.93]),
        t2i_data()["objects"][1],
    ])
    record = parse_record(T2IRecord(**scored).model_dump_json())
    assert record.schema_version == SCHEMA_VERSION and record.objects[0].box_scores == [0.93] and record.objects[1].box_scores is None
    with pytest.raises(ValueError, match="1 verification score"):
        GroundedObject(phrase="red kite", boxes=[KITE, FIELD], span=(0, 8), box_scores=[0.5])
    with pytest.raises(ValueError):
        EditOp(edit_type="color", target_object="kite", regions=[KITE], change="blue", region_scores=[1.5])
    old = json.loads(T2IRecord(**t2i_data()).model_dump_json())
    old["schema_version"] = "1.0"  # what got-data wrote before verification scores
    assert parse_record(old).schema_version == "1.0"
    old["schema_version"] = "2.0"
    with pytest.raises(RecordError):
        parse_record(old)


def test_multiturn_reinstructions_are_per_turn_and_need_schema_1_1():
    record = multiturn_record()
    assert parse_record(record.model_dump_json()).reinstructions == [["blue kite"], ["add field", "put a field in"]]
    data = record.model_dump(mode="json")
    with pytest.raises(RecordError, match="2 instruction.*rewrites for 1 turn"):
        parse_record({**data, "reinstructions": [["blue kite"]]})
    with pytest.raises(RecordError, match="per-turn reinstructions need schema_version 1.1"):
        parse_record({**data, "schema_version": "1.0"})
    assert parse_record({**data, "schema_version": "1.0", "reinstructions": None}).reinstructions is None


def test_a_multiturn_record_split_from_one_instruction_names_the_images_it_has():
    combined = {**multiturn_record().model_dump(mode="json"), "combined_instruction": "make it blue, then add a field",
                "step_images": [False, True], "images": [image("source", "source.jpg").model_dump(),
                                                          image("turn2", "turn2.jpg").model_dump()]}
    record = parse_record(combined)
    assert isinstance(record, MultiTurnRecord) and record.image_steps() == [2]
    assert [record.image_before_step(n) for n in (1, 2)] == ["source", "source"]
    assert parse_record(record.model_dump_json()) == record
    with pytest.raises(RecordError, match=r"roles \['source', 'turn1', 'turn2'\] in that order, got \['source', 'turn2'\]"):
        parse_record({**combined, "step_images": [True, True]})
    with pytest.raises(RecordError, match="final image"):
        parse_record({**combined, "step_images": [True, False]})
    with pytest.raises(RecordError, match="3 entries for 2 step"):
        parse_record({**combined, "step_images": [False, False, True]})
    with pytest.raises(RecordError, match="come together"):
        parse_record({**combined, "combined_instruction": None})
    with pytest.raises(RecordError, match="needs schema_version 1.2"):
        parse_record({**combined, "schema_version": "1.1"})
    with pytest.raises(RecordError, match="combined instruction contains special token"):
        parse_record({**combined, "combined_instruction": "make it <|box_start|> blue"})


def test_a_per_turn_multiturn_record_dumps_no_combined_fields():
    dumped = json.loads(multiturn_record().model_dump_json())
    assert "combined_instruction" not in dumped and "step_images" not in dumped
    assert [multiturn_record().image_before_step(n) for n in (1, 2)] == ["source", "turn1"]
