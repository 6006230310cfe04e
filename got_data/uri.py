"""One URI layer for every path a job reads or writes: local paths and `s3://` (and the other
schemes `pyarrow.fs` handles), so ingest, shards, validate, view and training share one way in.

Why pyarrow.fs: it is already a dependency (Parquet), speaks S3 with multipart uploads and the AWS
SDK's credential chain, and needs no fsspec backend. Credentials and an S3-compatible endpoint come
only from the standard places (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, `AWS_REGION`, `~/.aws/` files, instance roles): they are
never passed in a URI (refused), so they never reach a log, a record, a run marker or stats.
Throttling and transient errors (503 SlowDown, timeouts, dropped connections) are retried by the
SDK's standard strategy with exponential backoff; what is left is a `StorageError` of one line.

An object store has no rename: `write_bytes` and `upload` put an object under its final key in one
request (a multipart upload becomes visible only when it completes), so a reader never sees half an
object; on a local disk the same calls write a hidden temporary file, fsync it and rename it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from got_data.atomic import atomic_write
from got_data.errors import GotDataError

FileType = pafs.FileType

REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"})
S3_ATTEMPTS = 6  # the SDK's standard strategy: exponential backoff with jitter between attempts
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_PERMANENT = (
    ("ACCESS_DENIED", ("access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                       "~/.aws/credentials or the instance role) and the bucket's policy")),
    ("NO_SUCH_BUCKET", "no such bucket: check the bucket name and the endpoint (AWS_ENDPOINT_URL)"),
    ("INVALID_ACCESS_KEY_ID", "the access key is unknown to this store: check AWS_ACCESS_KEY_ID and AWS_ENDPOINT_URL"),
    ("SIGNATURE_DOES_NOT_MATCH", "the secret key does not match: check AWS_SECRET_ACCESS_KEY"),
    ("NETWORK_CONNECTION", "the store cannot be reached: check AWS_ENDPOINT_URL and the network"),
)


class StorageError(GotDataError):
    """An object store or file system refused or failed an operation (after retries)."""


def scheme_of(text: str) -> str | None:
    """The URI scheme of `text` (`s3`, `file`, `https`...), or None for a plain path."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_remote(text: str | os.PathLike[str]) -> bool:
    """True for a URI of an object store or remote file system this layer reads and writes."""
    return scheme_of(os.fspath(text)) in REMOTE_SCHEMES


@cache
def _s3_filesystem() -> pafs.S3FileSystem:
    """S3 with the SDK's credential chain, the endpoint from AWS_ENDPOINT_URL(_S3) and standard retries."""
    options: dict[str, Any] = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
                               "connect_timeout": 10.0, "request_timeout": 60.0}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc + parsed.path.rstrip("/"), scheme=parsed.scheme)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region or endpoint:
        options["region"] = region or "us-east-1"  # S3-compatible stores take any region name
    return pafs.S3FileSystem(**options)


def reset_filesystems() -> None:
    """Forget cached file systems (after the endpoint or credentials in the environment changed)."""
    _s3_filesystem.cache_clear()


@dataclass(frozen=True)
class Location:
    """A file or folder on a file system: `fs` and its `path` there, and the `uri` the user sees.
    Compared and hashed by path and uri (a store's file system object is not hashable)."""

    fs: pafs.FileSystem = field(compare=False)
    path: str
    uri: str

    @property
    def remote(self) -> bool:
        return not isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1]

    @property
    def parent(self) -> Location:
        head = self.path.rstrip("/").rsplit("/", 1)[0]
        uri_head = self.uri.rstrip("/").rsplit("/", 1)[0]
        return Location(self.fs, head, uri_head)

    def join(self, *parts: str) -> Location:
        """A location under this one (`parts` are relative, `/`-separated)."""
        rel = "/".join(p.strip("/") for p in parts if p)
        if not rel:
            return self
        return Location(self.fs, f"{self.path.rstrip('/')}/{rel}", f"{self.uri.rstrip('/')}/{rel}")

    def local_path(self) -> Path:
        """The local path; a StorageError for a remote location (callers that need a real file)."""
        if self.remote:
            raise StorageError(f"{self.uri} is not a local path")
        return Path(self.path)

    def __str__(self) -> str:
        return self.uri


def location(target: str | os.PathLike[str] | Location) -> Location:
    """The Location of a local path, a `file://` URI or a remote URI (`s3://bucket/prefix`).

    A URI that carries credentials (`s3://KEY:SECRET@bucket`) is refused: credentials come from the
    environment only, so they never end up in a marker, a record or a log line."""
    if isinstance(target, Location):
        return target
    text = os.fspath(target)
    scheme = scheme_of(text)
    if scheme is None:
        return Location(pafs.LocalFileSystem(), os.path.abspath(text), text)
    if scheme == "file":
        path = urlparse(text).path
        return Location(pafs.LocalFileSystem(), os.path.abspath(path), path)
    if scheme not in REMOTE_SCHEMES:
        raise StorageError(f"{scheme}:// is not a storage scheme got-data reads or writes; use a local path or "
                           f"one of {', '.join(sorted(REMOTE_SCHEMES | {'file'}))}")
    parsed = urlparse(text)
    if "@" in parsed.netloc:
        raise StorageError(f"{scheme}://...@{parsed.netloc.rsplit('@', 1)[1]}: a URI must not carry credentials; "
                           "set them in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or ~/.aws/")
    if not parsed.netloc:
        raise StorageError(f"{text}: name the bucket, as in {scheme}://bucket/prefix")
    path = (parsed.netloc + parsed.path).rstrip("/")
    uri = f"{scheme}://{path}"
    if scheme == "s3":
        return Location(_s3_filesystem(), path, uri)
    with storage_errors(uri):
        fs, fs_path = pafs.FileSystem.from_uri(text)
    return Location(fs, fs_path.rstrip("/"), uri)


def _explain(exc: OSError) -> str:
    message = str(exc)
    for code, advice in _PERMANENT:
        if code in message:
            return advice
    return message.splitlines()[0] if message else type(exc).__name__


@contextmanager
def storage_errors(uri: str, action: str = "") -> Iterator[None]:
    """Turn a remote store's OSError into one StorageError line naming the URI and what to check.
    A missing file stays FileNotFoundError (callers decide what absence means)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        what = f" ({action})" if action else ""
        raise StorageError(f"{uri}{what}: {_explain(exc)}") from exc


def _guard(loc: Location, action: str):
    return storage_errors(loc.uri, action) if loc.remote else _passthrough()


@contextmanager
def _passthrough() -> Iterator[None]:
    yield


def file_type(target: str | os.PathLike[str] | Location) -> pafs.FileType:
    """File, Directory or NotFound (a remote prefix with objects under it is a Directory)."""
    loc = location(target)
    with _guard(loc, "stat"):
        return loc.fs.get_file_info(loc.path).type


def exists(target: str | os.PathLike[str] | Location) -> bool:
    return file_type(target) != pafs.FileType.NotFound


def is_file(target: str | os.PathLike[str] | Location) -> bool:
    return file_type(target) == pafs.FileType.File


def is_dir(target: str | os.PathLike[str] | Location) -> bool:
    return file_type(target) == pafs.FileType.Directory


def file_size(target: str | os.PathLike[str] | Location) -> int:
    loc = location(target)
    with _guard(loc, "stat"):
        return loc.fs.get_file_info(loc.path).size


def list_dir(target: str | os.PathLike[str] | Location) -> list[pafs.FileInfo]:
    """The entries directly under a folder or prefix, sorted by name (a prefix with nothing under it
    is an empty folder: a store has no folders of its own)."""
    loc = location(target)
    with _guard(loc, "list"):
        infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=False, allow_not_found=loc.remote))
    return sorted(infos, key=lambda info: info.base_name)


def open_input(target: str | os.PathLike[str] | Location) -> IO[bytes]:
    """A seekable binary file (Parquet footers, tar members); close it (or use `with`)."""
    loc = location(target)
    if not loc.remote:
        return open(loc.path, "rb")
    with _guard(loc, "open"):
        return loc.fs.open_input_file(loc.path)


def read_bytes(target: str | os.PathLike[str] | Location, limit: int | None = None) -> bytes:
    """The file's bytes (at most `limit`: callers with a size cap never read more)."""
    loc = location(target)
    with _guard(loc, "read"), open_input(loc) as f:
        return f.read() if limit is None else f.read(limit)


def read_text(target: str | os.PathLike[str] | Location) -> str:
    return read_bytes(target).decode("utf-8")


def write_bytes(target: str | os.PathLike[str] | Location, data: bytes) -> None:
    """Write a whole file so that no reader ever sees part of it (see the module docstring)."""
    loc = location(target)
    if not loc.remote:
        _write_local_atomic(Path(loc.path), data)
        return
    with _guard(loc, "write"), loc.fs.open_output_stream(loc.path) as out:
        out.write(data)


def write_text(target: str | os.PathLike[str] | Location, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def upload(local_file: str | os.PathLike[str], target: str | os.PathLike[str] | Location) -> None:
    """Put a complete local file under `target`: on a store one (multipart) upload that becomes the
    object only when it completes; locally a copy then an atomic rename."""
    loc = location(target)
    if not loc.remote:
        Path(loc.path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(loc.path), lambda tmp: shutil.copyfile(local_file, tmp))
        return
    with _guard(loc, "upload"), open(local_file, "rb") as src, loc.fs.open_output_stream(loc.path) as out:
        shutil.copyfileobj(src, out, length=8 * 1024 * 1024)


def write_file(target: str | os.PathLike[str] | Location, write: Callable[[Path], object]) -> None:
    """Call `write(local_path)`, then put what it wrote under `target` whole: locally by an atomic
    rename, in a store by one upload from a temporary file (for files written piece by piece, such as
    a page of many images)."""
    loc = location(target)
    if not loc.remote:
        Path(loc.path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(loc.path), write)
        return
    with tempfile.TemporaryDirectory(prefix="got-data-upload-") as folder:
        staged = Path(folder) / loc.name
        write(staged)
        upload(staged, loc)


def delete(target: str | os.PathLike[str] | Location) -> None:
    """Remove a file or object; absent is fine."""
    loc = location(target)
    try:
        with _guard(loc, "delete"):
            loc.fs.delete_file(loc.path)
    except FileNotFoundError:
        return


def make_dirs(target: str | os.PathLike[str] | Location) -> None:
    """A local folder (and parents); on a store prefixes need no creation, so nothing is written."""
    loc = location(target)
    if not loc.remote:
        Path(loc.path).mkdir(parents=True, exist_ok=True)


def _write_local_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # like a store, where a key needs no folder
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
