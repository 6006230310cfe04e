"""What every input source yields: one InputItem per input image, plus the Source interface.

An item carries only a lazy handle on its image (a path, or bytes already read from a shard) so a
source can be iterated over millions of inputs with flat memory and items can be shipped to Ray
workers cheaply. Inputs that are unusable before any image is read (a URL, a missing file) still
become items, with `problem` set, so that they land in the rejects file instead of vanishing.
"""

from __future__ import annotations

import copy
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from got_data import uri as storage
from got_data.errors import InputRefused
from got_data.ingest.paths import (
    MISSING_FILE,
    NOT_A_REGULAR_FILE,
    OUTSIDE_INPUT_ROOT,
    URL_NOT_SUPPORTED,
    PathRefused,
    open_regular,
)
from got_data.records.models import SourceInfo

# Reasons an item can carry in `problem` (stable strings: they appear in rejects files).
MISSING_IMAGE_PATH = "missing_image_path"
INVALID_ROW = "invalid_row"
UNREADABLE_FILE = "unreadable_file"
PROBLEM_REASONS = (
    MISSING_FILE, URL_NOT_SUPPORTED, MISSING_IMAGE_PATH, INVALID_ROW, UNREADABLE_FILE, OUTSIDE_INPUT_ROOT,
    NOT_A_REGULAR_FILE,
)

URL_ADVICE = "URLs are not fetched here; download the images first, e.g. with img2dataset"

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"})
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the image extensions we read (case-insensitive)."""
    return os.path.splitext(name)[1][1:].lower() in IMAGE_EXTENSIONS


def is_url(text: str) -> bool:
    """Whether text is a URL (http://, s3://, gs://, file://, ...) rather than a local path."""
    return bool(_URL_RE.match(text))


def dataset_name(path: str | os.PathLike[str]) -> str:
    """Default dataset name for an input: the folder name or file stem ("input" if there is none)."""
    if is_url(os.fspath(path)):  # a bucket prefix or object: its last part (an object's without its extension)
        last = os.fspath(path).rstrip("/").rsplit("/", 1)[-1].split("://")[-1]
        return (os.path.splitext(last)[0] if storage.is_file(path) else last) or "input"
    resolved = Path(path).resolve()
    name = resolved.stem if resolved.is_file() else resolved.name
    return name or "input"


class ImageReadError(InputRefused):
    """An input image's bytes could not be read; `reason` is missing_file, unreadable_file or
    not_a_regular_file."""


class ImageSource(ABC):
    """Lazy access to an input image's raw bytes."""

    @abstractmethod
    def read(self) -> bytes:
        """The file's bytes, exactly as stored; raises ImageReadError when they cannot be read."""


@dataclass(frozen=True)
class PathImage(ImageSource):
    """An image on disk: holds only the path, so it costs nothing until read.

    `path` is a real path a source checked against its InputRoots; `ref` names it in messages
    (relative to its root: rejects are published, host paths are not).
    """

    path: str
    ref: str = "the image file"

    def read(self) -> bytes:
        try:
            with open_regular(self.path) as f:
                return f.read()
        except PathRefused as exc:
            raise ImageReadError(exc.reason, f"image file {self.ref}: {exc.detail}") from exc
        except FileNotFoundError as exc:
            raise ImageReadError(MISSING_FILE, f"image file {self.ref} no longer exists") from exc
        except OSError as exc:
            raise ImageReadError(UNREADABLE_FILE, f"cannot read image file {self.ref}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class ObjectImage(ImageSource):
    """An image object in a bucket (`s3://...`): holds only its URI; read where it is decoded (a Ray
    worker, with the node's credentials from the environment), so its bytes never pass the driver."""

    uri: str

    def read(self) -> bytes:
        try:
            return storage.read_bytes(self.uri)
        except FileNotFoundError as exc:
            raise ImageReadError(MISSING_FILE, f"image object {self.uri} no longer exists") from exc
        except storage.StorageError as exc:
            raise ImageReadError(UNREADABLE_FILE, f"cannot read image object: {exc}") from exc


@dataclass(frozen=True)
class BytesImage(ImageSource):
    """An image whose bytes were already read (a shard member, an embedded Parquet cell)."""

    data: bytes = field(repr=False)

    def read(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class InputItem:
    """One input image with its optional caption and where it came from.

    `caption` is None when the input has none, when it was empty, or when it could not be used;
    `caption_error` says which of the last ("invalid_utf8: ...", "truncated: ...") so the caption's
    loss is visible without failing the item. `problem` is (reason, detail) for inputs that cannot be
    processed at all; `image` is None only then.
    """

    input_ref: str
    dataset: str
    image: ImageSource | None
    caption: str | None = None
    caption_error: str | None = None
    problem: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.image is None and self.problem is None:
            raise ValueError(f"input {self.input_ref}: an item without an image must say why (problem)")

    def image_sources(self) -> dict[str, ImageSource]:
        """The images to decode for this input, by record role (T2I: the one `image`)."""
        return {"image": self.image} if self.image is not None else {}

    def source_info(self) -> SourceInfo:
        """The record's `source` block for this input."""
        return SourceInfo(dataset=self.dataset, input_ref=self.input_ref, original_caption=self.caption)


def problem_item(
    dataset: str, input_ref: str, reason: str, detail: str, caption: str | None = None, caption_error: str | None = None
) -> InputItem:
    """An item that is rejected before its image is read."""
    return InputItem(
        input_ref=input_ref, dataset=dataset, image=None, caption=caption, caption_error=caption_error,
        problem=(reason, detail),
    )


ItemT = TypeVar("ItemT", covariant=True)


class Source(ABC, Generic[ItemT]):
    """A lazy, deterministic stream of items (InputItems for T2I, EditItems for edits): same input, same
    items in the same order. One class per input format (folder, manifest, shards), whatever the
    record kind: what a file, row or sample becomes is the `InputKind`'s."""

    dataset: str

    @abstractmethod
    def __iter__(self) -> Iterator[ItemT]: ...

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the input lives: the real path of its folder, manifest file or shards' folder, or its
        URI in a store. The run marker names the input by it, so a resume reads the same input."""

    def count(self) -> int | None:
        """How many items iteration will yield, for progress bars; None when that is not cheap to know."""
        return None


Span = tuple[int, int]  # positions [start, stop) of a source's whole listing
RangedT = TypeVar("RangedT", bound="RangedSource[Any]")


class RangedSource(Source[ItemT], Generic[ItemT]):
    """A source that can be narrowed to one contiguous range of its listing (an annotator's partition,
    `annotate/partitions.py`): it yields only those inputs, under the references the whole listing
    gives them, and reads as little outside the range as its format allows."""

    span: Span | None = None  # None: the whole listing

    def of_range(self: RangedT, start: int, stop: int) -> RangedT:
        """This source yielding only the inputs at positions `start` to `stop - 1` of its listing."""
        part = copy.copy(self)
        part.span = (start, stop)
        return part


class InputKind(ABC, Generic[ItemT]):
    """What one input of a record kind is made of: the item builder every format's reader asks.

    A kind implements one interface per format it is read from (`FolderInputs`, `RowInputs`,
    `SampleInputs`, next to their readers) and carries its own options (column names, text limits).
    """

    record_kind: str  # a name of records.RECORD_KINDS
    name: str  # the inputs in messages ("edit pairs")
    accepted: str  # what they are read from, for messages ("an image folder, a manifest ... or .tar shards")

    @abstractmethod
    def problem(self, dataset: str, input_ref: str, reason: str, detail: str) -> ItemT:
        """An item rejected before any image is read (a refused path, a bad row, a refused tar member)."""
