"""The edit vocabulary records speak: edit types, which of them act on the whole picture, and the
phrase that names the whole picture as an edit's object. Ingest, the edit stages and the world share it."""

from __future__ import annotations

EDIT_TYPES = (
    "add", "remove", "replace", "attribute", "color", "expression", "weather", "lighting", "background", "style",
    "other",
)
# Edits of the picture as a whole: their region is the whole image, (0,0),(999,999).
GLOBAL_EDIT_TYPES = frozenset({"style", "weather", "lighting", "background"})
# The object an edit names when it acts on the whole picture (a global edit, or no object found).
WHOLE_IMAGE_PHRASE = "the whole image"
