"""schemas/*.json must match the models: regenerate with `got-data schema export` (or `make schemas`)."""

import json
from pathlib import Path

import jsonschema
import pytest

from got_data.records.schema_export import export_schemas, schema_documents, stale_schemas

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_models():
    stale = stale_schemas(REPO_SCHEMAS)
    assert not stale, f"schemas drifted from the models: {stale}; run `got-data schema export`"


def test_drift_is_detected(tmp_path):
    export_schemas(tmp_path)
    assert stale_schemas(tmp_path) == []
    (tmp_path / "t2i.json").write_text("{}", encoding="utf-8")
    assert stale_schemas(tmp_path) == ["t2i.json"]


def test_schema_accepts_a_valid_record_and_refuses_a_bad_box():
    from tests.records.test_models import T2IRecord, t2i_data

    record = json.loads(T2IRecord(**t2i_data()).model_dump_json())
    schema = json.loads(schema_documents()["t2i.json"])
    jsonschema.validate(record, schema)
    record["objects"][0]["boxes"][0] = {"x1": 1, "y1": 2, "x2": 3}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, schema)
