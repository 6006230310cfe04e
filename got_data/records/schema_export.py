"""JSON Schema export of the record kinds, so non-Python consumers (and CI) can check records."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from got_data.records.models import RECORD_TYPES, Record

SCHEMA_FILES: dict[str, object] = {f"{kind}.json": model for kind, model in RECORD_TYPES.items()}


def schema_documents() -> dict[str, str]:
    """File name -> JSON Schema text, one per record kind plus `record.json` for the tagged union."""
    docs = {name: model.model_json_schema() for name, model in SCHEMA_FILES.items()}  # type: ignore[attr-defined]
    docs["record.json"] = TypeAdapter(Record).json_schema()
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in docs.items()}


def export_schemas(out_dir: Path) -> list[Path]:
    """Write every schema document into out_dir; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_documents().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(out_dir: Path) -> list[str]:
    """Names of schema files in out_dir that are missing or differ from the models."""
    return [
        name
        for name, text in schema_documents().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]
