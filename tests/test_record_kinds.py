"""Record kinds have one home (`records.models.RECORD_KINDS`); every per-kind table of the other layers
covers exactly those kinds, so adding a kind fails here until each layer knows it."""

from __future__ import annotations

import typing

import pytest

from got_data.annotate.work_items import WORK_KINDS
from got_data.ingest import INPUT_KINDS
from got_data.records import RECORD_KINDS, RECORD_TYPES, RecordKind
from got_data.records.schema_export import SCHEMA_FILES
from got_data.spec import PipelineSpec, load_spec
from got_data.world.sets import INPUT_NAMES, KINDS, WORLD_SPECS


def test_the_kind_names_are_one_list():
    assert RECORD_KINDS == ("t2i", "edit", "multiturn")
    assert typing.get_args(RecordKind) == RECORD_KINDS
    assert typing.get_args(PipelineSpec.model_fields["record_kind"].annotation) == RECORD_KINDS


@pytest.mark.parametrize("name,table", [
    ("record types", RECORD_TYPES), ("work kinds", WORK_KINDS), ("input kinds", INPUT_KINDS), ("world input names", INPUT_NAMES),
    ("world specs", WORLD_SPECS), ("schema files", {name.removesuffix(".json"): v for name, v in SCHEMA_FILES.items()}),
])
def test_every_per_kind_table_covers_every_kind(name, table):
    assert tuple(table) == RECORD_KINDS, name


def test_each_input_kind_builds_items_of_its_record_kind():
    assert all(items.record_kind == kind for kind, items in INPUT_KINDS.items())


def test_world_sets_and_bundled_specs_cover_every_kind():
    assert KINDS == RECORD_KINDS
    for kind in RECORD_KINDS:
        assert load_spec(f"{kind}.yaml").record_kind == kind
        assert load_spec(WORLD_SPECS[kind]).record_kind == kind
