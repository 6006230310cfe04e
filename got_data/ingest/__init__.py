"""The input side of the annotation pipelines: one reader per input format (folder, manifest, shards),
one item builder per record kind (`T2IInputs`, `EditInputs`, `MultiTurnInputs`), image preparation."""

from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS
from got_data.ingest.edit_inputs import EditInputs, MultiTurnInputs
from got_data.ingest.edit_items import EditItem, EditTurn, normalize_edit_type
from got_data.ingest.folder import FolderSource
from got_data.ingest.images import (
    REJECT_REASONS,
    ImageRejected,
    PreparedImage,
    load_input_image,
    prepare_image,
)
from got_data.ingest.items import (
    IMAGE_EXTENSIONS,
    PROBLEM_REASONS,
    BytesImage,
    ImageReadError,
    ImageSource,
    InputItem,
    InputKind,
    PathImage,
    Source,
)
from got_data.ingest.manifest import ManifestSource
from got_data.ingest.sources import INPUT_KINDS, open_source
from got_data.ingest.t2i_inputs import T2IInputs
from got_data.ingest.webdataset import WebDatasetSource
from got_data.records.edits import EDIT_TYPES, GLOBAL_EDIT_TYPES

__all__ = [
    "DEFAULT_MAX_CAPTION_CHARS",
    "EDIT_TYPES",
    "GLOBAL_EDIT_TYPES",
    "INPUT_KINDS",
    "EditInputs",
    "EditItem",
    "EditTurn",
    "IMAGE_EXTENSIONS",
    "PROBLEM_REASONS",
    "REJECT_REASONS",
    "BytesImage",
    "FolderSource",
    "ImageReadError",
    "ImageRejected",
    "ImageSource",
    "InputItem",
    "InputKind",
    "ManifestSource",
    "MultiTurnInputs",
    "PathImage",
    "PreparedImage",
    "Source",
    "T2IInputs",
    "WebDatasetSource",
    "load_input_image",
    "normalize_edit_type",
    "open_source",
    "prepare_image",
]
