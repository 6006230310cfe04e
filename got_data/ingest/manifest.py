"""A manifest (JSONL or Parquet) with one row per input: what a row becomes is the record kind's
(`RowInputs`: an image and a caption column for T2I, source/target/instruction for edits...).

The manifest may be a local file or an object (`s3://bucket/p/pairs.jsonl`, through `got_data/uri.py`).
Image cells may hold a path (relative to the manifest's folder or prefix, or absolute, or a `file://`
URI), an object URI (`s3://...`), raw bytes, or a Hugging Face `Image` struct ({"bytes": ..., "path": ...}).
A path or object must lie inside the manifest's folder (prefix) or one the user allowed (InputRoots):
a cell pointing elsewhere makes an item with problem `outside_input_root`, one naming a FIFO or device
`not_a_regular_file`. Other URLs (`http://`...) are never fetched: such a row becomes an item with
problem `url_not_supported`, so a run over a half-downloaded manifest still processes the local rows
and lists the rest in its rejects. Columns are checked when the source is opened, against the first
JSONL row or the Parquet schema, so a wrong column name fails before any work. Rows are read in
batches (Parquet) or line by line (JSONL): memory stays flat. Narrowed to a range of rows (`of_range`,
an annotator's partition), a Parquet manifest reads only the row groups that hold them and a JSONL
one parses only their lines (it still reads the lines before them: JSONL has no index).
"""

from __future__ import annotations

import itertools
import json
import os
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Generic

import pyarrow as pa
import pyarrow.parquet as pq

from got_data import uri
from got_data.errors import InputError
from got_data.ingest.items import (
    INVALID_ROW,
    MISSING_IMAGE_PATH,
    URL_ADVICE,
    URL_NOT_SUPPORTED,
    BytesImage,
    ImageSource,
    InputKind,
    ItemT,
    ObjectImage,
    PathImage,
    RangedSource,
    Span,
    dataset_name,
    is_url,
)
from got_data.ingest.paths import LOCAL_SCHEMES, InputRoots, PathRefused

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_BATCH_ROWS = 256
_CHUNK = 1 << 20


class ManifestFile:
    """A JSONL or Parquet manifest: its columns, its rows (streamed) and how its image cells resolve.

    Every record kind's rows come through it, so every manifest accepts the same formats and image
    cells and gives the same advice. Image paths are confined to the manifest's folder plus `allow_outside`.
    """

    def __init__(self, path: str | os.PathLike[str], allow_outside: Iterable[str | os.PathLike[str]] = ()) -> None:
        text = os.fspath(path)
        self.remote = uri.is_remote(text)
        where = uri.location(text)
        self.path: Path | str = where.uri if self.remote else Path(text)
        self.name = where.name
        if not (uri.is_file(where) if self.remote else Path(text).is_file()):
            raise InputError(f"manifest {self.path} does not exist or is not a file")
        self.folder = where.parent.uri if self.remote else str(Path(text).absolute().parent)
        self.roots = InputRoots.under(self.folder, allow_outside, what="the manifest's folder")
        suffix = where.suffix.lower()
        if suffix in JSONL_SUFFIXES:
            self.kind = "jsonl"
        elif suffix in PARQUET_SUFFIXES:
            self.kind = "parquet"
        else:
            raise InputError(
                f"manifest {self.path}: unknown format {suffix!r}; use JSON Lines ({', '.join(JSONL_SUFFIXES)}) "
                f"or Parquet ({', '.join(PARQUET_SUFFIXES)})"
            )

    def require(self, column: str, what: str, option: str) -> None:
        """Fail before any work when a needed column is missing (a typo would otherwise reject every row)."""
        columns = self.columns()
        if column not in columns:
            raise InputError(
                f"manifest {self.path} has no {what} column {column!r}; its columns are {sorted(columns)}. "
                f"Name the right one with {option}."
            )

    def rows(self, columns: list[str], span: Span | None = None) -> Iterator[tuple[str, Any]]:
        """(input_ref, row) per data row (those in `span` only, when given); `#row=N` counts data rows
        from 0. A JSONL line that does not parse gives an _InvalidRow; Parquet reads only `columns`."""
        rows = self._jsonl_rows(span) if self.kind == "jsonl" else self._parquet_rows(columns, span)
        for index, row in enumerate(rows, start=span[0] if span is not None else 0):
            yield f"{self.name}#row={index}", row

    def count(self) -> int:
        """Parquet: from the footer. JSONL: one pass over the lines (no JSON parsing)."""
        if self.kind == "parquet":
            with uri.open_input(self.path) as f:
                return self._parquet_file(f).metadata.num_rows
        with uri.open_input(self.path) as f:
            return sum(1 for line in _lines(f) if line.strip())

    def columns(self) -> set[str]:
        if self.kind == "parquet":
            with uri.open_input(self.path) as f:
                return set(self._parquet_file(f).schema_arrow.names)
        for row in self._jsonl_rows():
            if isinstance(row, _InvalidRow):
                raise InputError(f"manifest {self.path} is not JSON Lines: {row.detail}")
            if not isinstance(row, dict):
                raise InputError(f"manifest {self.path}: the first row is a JSON {type(row).__name__}, not an object")
            return set(row)
        raise InputError(f"manifest {self.path} is empty")

    def _parquet_file(self, f: IO[bytes]) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"manifest {self.path} is not a readable Parquet file: {exc}") from exc

    def _jsonl_rows(self, span: Span | None = None) -> Iterator[Any]:
        """Each non-blank line (in `span`) parsed; a line that is not JSON gives an _InvalidRow placeholder."""
        with uri.open_input(self.path) as f:
            lines: Iterator[tuple[int, bytes]] = ((n, line) for n, line in enumerate(_lines(f), start=1) if line.strip())
            for line_number, line in lines if span is None else itertools.islice(lines, *span):
                try:
                    yield json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    yield _InvalidRow(f"line {line_number} is not valid JSON: {exc}")

    def _parquet_rows(self, columns: list[str], span: Span | None = None) -> Iterator[dict[str, Any]]:
        """The rows (in `span`), read from the row groups that hold them."""
        try:
            with uri.open_input(self.path) as f:
                parquet = self._parquet_file(f)
                groups, first = _row_groups(parquet.metadata, span)
                batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns, row_groups=groups)
                rows = (row for batch in batches for row in batch.to_pylist())
                yield from rows if span is None else itertools.islice(rows, span[0] - first, span[1] - first)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"manifest {self.path}: cannot read Parquet rows: {exc}") from exc

    def image(self, value: Any, column: str) -> tuple[ImageSource | None, tuple[str, str] | None]:
        """The image a cell points at, or the reason it cannot be used."""
        if isinstance(value, dict):  # Hugging Face Image feature
            value = value.get("bytes") or value.get("path")
        if isinstance(value, (bytes, bytearray)):
            return BytesImage(bytes(value)), None
        if value is None or value == "":
            return None, (MISSING_IMAGE_PATH, f"column {column!r} is empty in this row")
        if not isinstance(value, str):
            return None, (INVALID_ROW, f"column {column!r} holds a {type(value).__name__}, not a path")
        if is_url(value) and value.split(":", 1)[0].lower() not in LOCAL_SCHEMES and not uri.is_remote(value):
            return None, (URL_NOT_SUPPORTED, f"{value}: {URL_ADVICE}, then point the manifest at the local files")
        try:
            real = self.roots.locate(value, self.folder)
        except PathRefused as exc:
            return None, (exc.reason, f"column {column!r}: {exc.detail}")
        if uri.is_remote(real):
            return ObjectImage(real), None
        return PathImage(real, ref=self.roots.ref(real)), None


def _row_groups(metadata: pq.FileMetaData, span: Span | None) -> tuple[list[int], int]:
    """The row groups holding the rows of `span` (all without one), and the row their first starts at."""
    groups: list[int] = []
    first = at = 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if span is None or (at + rows > span[0] and at < span[1]):
            if not groups:
                first = at
            groups.append(group)
        at += rows
    return groups, first


def _lines(f: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary file read in chunks (a store's input files have no readline)."""
    rest = b""
    while chunk := f.read(_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def row_problem(row: Any) -> str | None:
    """Why a manifest row is not usable at all (not JSON, not an object), or None."""
    if isinstance(row, _InvalidRow):
        return row.detail
    if not isinstance(row, dict):
        return f"row is a JSON {type(row).__name__}, not an object"
    return None


class RowInputs(InputKind[ItemT]):
    """What a record kind makes of a manifest row."""

    @abstractmethod
    def manifest_columns(self, file: ManifestFile) -> dict[str, str | None]:
        """The columns to read, by what they hold (None: not read), once the manifest is open; a column
        the kind needs and the manifest lacks is one InputError naming the option to fix, before any work."""

    @abstractmethod
    def from_row(self, dataset: str, input_ref: str, row: dict[str, Any], columns: dict[str, str | None],
                 file: ManifestFile) -> ItemT:
        """The item for one row (a JSON object); image cells resolve through `file.image`."""


class ManifestSource(RangedSource[ItemT], Generic[ItemT]):
    """Rows of a JSONL or Parquet manifest, as `items` makes them; `#row=N` in input_ref counts data
    rows from 0. A row that is not a JSON object is an `invalid_row` item."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        items: RowInputs[ItemT],
        dataset: str | None = None,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.items = items
        self.file = ManifestFile(path, allow_outside)
        self.path = self.file.path
        self.dataset = dataset or dataset_name(self.path)
        self.columns = items.manifest_columns(self.file)

    @property
    def location(self) -> str:
        return str(self.path) if self.file.remote else os.path.realpath(self.path)

    def __iter__(self) -> Iterator[ItemT]:
        for ref, row in self.file.rows([c for c in self.columns.values() if c is not None], self.span):
            bad = row_problem(row)
            if bad is not None:
                yield self.items.problem(self.dataset, ref, INVALID_ROW, bad)
            else:
                yield self.items.from_row(self.dataset, ref, row, self.columns, self.file)

    def count(self) -> int | None:
        whole = self.file.count()
        return whole if self.span is None else len(range(self.span[0], min(self.span[1], whole)))


class _InvalidRow:
    """Stands in for a JSONL line that did not parse, so it is reported at its row index."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
