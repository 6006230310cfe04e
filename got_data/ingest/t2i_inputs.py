"""What a T2I input is made of in each format: one image and its optional caption.

- folder: every image file; `photo.jpg`'s caption is `photo.txt` beside it, when present;
- manifest: an image column and an optional caption column (the default `caption` is used when the
  manifest has it; any other name must exist, so a typo cannot silently drop every caption);
- shards: `KEY.<image ext>`, the caption `KEY.txt` when present, else the "caption" field of `KEY.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, Caption, caption_from_bytes, caption_from_value
from got_data.ingest.folder import FolderFiles, FolderInputs
from got_data.ingest.items import IMAGE_EXTENSIONS, MISSING_FILE, BytesImage, InputItem, is_image_name, problem_item
from got_data.ingest.manifest import JSONL_SUFFIXES, PARQUET_SUFFIXES, ManifestFile, RowInputs
from got_data.ingest.paths import PathRefused
from got_data.ingest.webdataset import SampleInputs

DEFAULT_CAPTION_COLUMN = "caption"
_CAPTION_MEMBERS = ("txt", "json")


class T2IInputs(FolderInputs[InputItem], RowInputs[InputItem], SampleInputs[InputItem]):
    """T2I inputs (InputItems): `image_column` and `caption_column` name a manifest's columns
    (`caption_column=None`: no captions); captions are cut at `max_caption_chars`."""

    record_kind = "t2i"
    name = "T2I inputs"
    accepted = (f"an image folder, a manifest ({', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}) "
                "or .tar shards")

    def __init__(self, image_column: str = "image", caption_column: str | None = DEFAULT_CAPTION_COLUMN,
                 max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS) -> None:
        self.image_column = image_column
        self.caption_column = caption_column
        self.max_caption_chars = max_caption_chars

    def problem(self, dataset: str, input_ref: str, reason: str, detail: str) -> InputItem:
        return problem_item(dataset, input_ref, reason, detail)

    def folder_inputs(self, rel: str, names: Sequence[str]) -> Iterator[tuple[str, Any]]:
        sidecars: dict[str, str] = {}
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() == ".txt":
                sidecars.setdefault(stem, name)
        for name in names:
            if is_image_name(name):
                yield rel + name, (name, sidecars.get(os.path.splitext(name)[0]))

    def from_folder(self, dataset: str, input_ref: str, parts: Any, files: FolderFiles) -> InputItem:
        name, sidecar = parts
        try:
            image = files.image(name)
            caption, caption_error = (None, None) if sidecar is None else files.text(
                sidecar, self.max_caption_chars, shown=f"its caption {files.rel}{sidecar}")
        except PathRefused as exc:
            return problem_item(dataset, input_ref, exc.reason, exc.detail)
        return InputItem(input_ref=input_ref, dataset=dataset, image=image, caption=caption,
                         caption_error=caption_error)

    def manifest_columns(self, file: ManifestFile) -> dict[str, str | None]:
        file.require(self.image_column, "image", "the image column option")
        columns = file.columns()
        caption_column = self.caption_column
        if caption_column is not None and caption_column not in columns:
            if caption_column != DEFAULT_CAPTION_COLUMN:
                raise InputError(
                    f"manifest {file.path} has no caption column {caption_column!r}; its columns are {sorted(columns)}"
                )
            caption_column = None
        return {"image": self.image_column, "caption": caption_column}

    def from_row(self, dataset: str, input_ref: str, row: dict[str, Any], columns: dict[str, str | None],
                 file: ManifestFile) -> InputItem:
        caption, caption_error = (None, None)
        if columns["caption"] is not None:
            caption, caption_error = caption_from_value(row.get(columns["caption"]), self.max_caption_chars)
        image_column = self.image_column
        image, problem = file.image(row.get(image_column), image_column)
        if problem is not None:
            return problem_item(dataset, input_ref, *problem, caption=caption, caption_error=caption_error)
        return InputItem(input_ref=input_ref, dataset=dataset, image=image, caption=caption,
                         caption_error=caption_error)

    def wanted_member(self, ext: str) -> bool:
        return ext in IMAGE_EXTENSIONS or ext in _CAPTION_MEMBERS

    def from_sample(self, dataset: str, input_ref: str, key: str, members: dict[str, bytes]) -> InputItem:
        caption, caption_error = self._sample_caption(members)
        image_ext = next((ext for ext in members if ext in IMAGE_EXTENSIONS), None)
        if image_ext is None:
            detail = f"sample {key!r} has no image member (members: {sorted(members) or 'none we read'})"
            return problem_item(dataset, input_ref, MISSING_FILE, detail, caption=caption, caption_error=caption_error)
        return InputItem(input_ref=input_ref, dataset=dataset, image=BytesImage(members[image_ext]), caption=caption,
                         caption_error=caption_error)

    def _sample_caption(self, members: dict[str, bytes]) -> Caption:
        if "txt" in members:
            return caption_from_bytes(members["txt"], self.max_caption_chars)
        if "json" not in members:
            return None, None
        try:
            meta = json.loads(members["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, f"invalid_json: the sample's json member does not parse ({exc})"
        if not isinstance(meta, dict):
            return None, None
        return caption_from_value(meta.get("caption"), self.max_caption_chars)
