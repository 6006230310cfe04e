"""Record kinds, their GoT text codec and box conversions."""

from got_data.records.boxes import WHOLE_IMAGE, Box, pixels_to_rel, qwen25_abs_to_rel, rel_to_pixels, smart_resize
from got_data.records.codec import Annotation, ParsedGot, parse_got, render_got, strip_special_tokens
from got_data.records.models import (
    READABLE_SCHEMA_VERSIONS,
    RECORD_KINDS,
    RECORD_TYPES,
    SCHEMA_VERSION,
    EditOp,
    EditRecord,
    GroundedObject,
    ImageInfo,
    ModelInfo,
    MultiTurnRecord,
    PlacedObject,
    Provenance,
    Record,
    RecordKind,
    SourceInfo,
    StageUsage,
    T2IRecord,
    make_key,
    parse_record,
)

AnyRecord = T2IRecord | EditRecord | MultiTurnRecord

__all__ = [
    "RECORD_KINDS", "RECORD_TYPES", "RecordKind", "READABLE_SCHEMA_VERSIONS", "SCHEMA_VERSION", "WHOLE_IMAGE",
    "Annotation", "AnyRecord", "Box", "EditOp", "EditRecord",
    "GroundedObject", "ImageInfo", "ModelInfo", "MultiTurnRecord", "ParsedGot", "PlacedObject", "Provenance", "Record",
    "SourceInfo", "StageUsage", "T2IRecord", "make_key", "parse_got", "parse_record", "pixels_to_rel",
    "qwen25_abs_to_rel", "rel_to_pixels", "render_got", "smart_resize", "strip_special_tokens",
]
