"""The input side of the annotation pipelines: sources of InputItems and image preparation."""

from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS
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
    PathImage,
    Source,
)
from got_data.ingest.manifest import ManifestSource
from got_data.ingest.sources import open_edit_source, open_source
from got_data.ingest.webdataset import WebDatasetSource
from got_data.records.edits import EDIT_TYPES, GLOBAL_EDIT_TYPES

__all__ = [
    "DEFAULT_MAX_CAPTION_CHARS",
    "EDIT_TYPES",
    "GLOBAL_EDIT_TYPES",
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
    "ManifestSource",
    "PathImage",
    "PreparedImage",
    "Source",
    "WebDatasetSource",
    "load_input_image",
    "normalize_edit_type",
    "open_edit_source",
    "open_source",
    "prepare_image",
]
