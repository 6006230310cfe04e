"""Names and tar headers of a shard folder, shared by the writer, the reader and the validator.

Keeping them in one place is what lets a reader, a resumed writer and the validator agree on which
files are finished shards (`{name}-{index:06d}.tar`) and which are leftovers of an interrupted write
(hidden `.{...}.partial` files, never matched as shards).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

from got_data import uri
from got_data.atomic import atomic_write_text
from got_data.atomic import partial_path as partial_path  # re-exported for the shard code and the viewer
from got_data.errors import ShardError
from got_data.uri import Location

JSON_MEMBER = "json"
MANIFEST_FILE = "manifest.json"
TAR_FORMAT = tarfile.USTAR_FORMAT
MEMBER_MODE = 0o644

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MEMBER_RE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
_SHARD_RE = re.compile(r"^(?P<name>.+)-(?P<index>\d{6,})\.tar$")
# What the readers of shards take: files, folders, globs, bucket URIs, shard Locations, or a list of them.
ShardSources = Sequence[Path | str | Location] | Path | str | Location
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # pipe:CMD, http://, s3://, file:...


def check_name(name: str) -> str:
    """A shard name prefix must be a plain, visible file-name stem (hidden names are reserved for partials)."""
    if not _NAME_RE.match(name):
        raise ShardError(f"shard name {name!r} must start with a letter, digit or '_' and hold only [A-Za-z0-9_.-]")
    return name


def check_member(member: str) -> str:
    """Image members must survive webdataset's key/extension split (lower case, no '/', not 'json')."""
    if member == JSON_MEMBER or not _MEMBER_RE.match(member):
        raise ShardError(
            f"image member {member!r} is not usable in a shard: use lower-case dotted suffixes such as "
            "'jpg' or 'source.png', never 'json'"
        )
    return member


def tar_filename(name: str, index: int) -> str:
    return f"{name}-{index:06d}.tar"


def index_filename(name: str, index: int) -> str:
    return f"{name}-{index:06d}.index.parquet"


def index_path_for(tar_path: Path) -> Path:
    """The parquet index that sits beside a shard tar."""
    return tar_path.with_name(tar_path.name[: -len(".tar")] + ".index.parquet")


def write_file_atomically(final: Path | Location, text: str) -> Path | Location:
    """Write `text` so that readers never see half a file: locally under the partial name, fsync,
    rename to `final`; in a bucket as one upload under its key (the URI layer)."""
    if isinstance(final, Location):
        if final.remote:
            try:
                uri.write_text(final, text)
            except uri.StorageError as exc:
                raise ShardError(f"cannot write {final}: {exc}") from exc
            return final
        final = Path(final.path)
    try:
        atomic_write_text(final, text)
    except OSError as exc:
        raise ShardError(f"cannot write {final}: {exc}") from exc
    return final


def parse_shard_name(file_name: str) -> tuple[str, int] | None:
    """(shard name, index) of a finished shard's file name (`got-p001-000004.tar` -> ("got-p001", 4))."""
    match = _SHARD_RE.match(file_name)
    return (match["name"], int(match["index"])) if match else None


def shard_index(path: Path | Location, name: str | None = None) -> int | None:
    """The shard number of a finished shard file name, or None when the name is not a shard's."""
    match = _SHARD_RE.match(path.name)
    if not match or (name is not None and match["name"] != name):
        return None
    return int(match["index"])


def partition_label(partition: int) -> str:
    """How partition 3 of a run is named: `p003` (its journal folder `_state/p003/`, its shards below)."""
    return f"p{partition:03d}"


def partition_shard_name(name: str, partition: int) -> str:
    """The shard name of one annotator's partition of a run named `name`: `got` -> `got-p003`, so its
    tars (`got-p003-000000.tar`) never collide with another annotator's or the single driver's."""
    return f"{name}-{partition_label(partition)}"


def in_run(shard_name: str, name: str) -> bool:
    """Whether shards named `shard_name` belong to the run named `name`: the single driver's own
    (`got`) or one of its annotators' partitions (`got-p000`, `got-p001`, ...)."""
    return shard_name == name or re.fullmatch(re.escape(name) + r"-p\d{3,}", shard_name) is not None


def shard_in_run(file_name: str, name: str | None) -> bool:
    """Whether a file is a finished shard of the run `name` (any run's when `name` is None)."""
    parsed = parse_shard_name(file_name)
    return parsed is not None and (name is None or in_run(parsed[0], name))


def list_run_shard_locations(folder: str | os.PathLike[str] | Location, name: str) -> list[Location]:
    """Finished shards of the run named `name` (its own and every partition's), sorted by name: what
    the manifest, the wids index and the dataset card list."""
    base = uri.location(folder)
    return [base.join(info.base_name) for info in uri.list_dir(base)
            if info.type == uri.FileType.File and shard_in_run(info.base_name, name)]


def list_shard_locations(folder: str | os.PathLike[str] | Location, name: str | None = None) -> list[Location]:
    """Finished shards of a local folder or a bucket prefix (the URI layer), sorted by name."""
    base = uri.location(folder)
    return [base.join(info.base_name) for info in uri.list_dir(base)
            if info.type == uri.FileType.File and shard_index(Path(info.base_name), name) is not None]


def _bucket_glob(pattern: str) -> list[Location]:
    """The finished shards whose names match a glob in the last part of a bucket URI
    (`s3://bucket/got/got-00*.tar`); a store lists prefixes, so a pattern above the last part is refused."""
    loc = uri.location(pattern)
    if glob.has_magic(loc.parent.uri):
        raise ShardError(f"{pattern!r}: in a bucket URI only the last part may hold a glob (s3://bucket/got/got-*.tar)")
    return [loc.parent.join(info.base_name) for info in uri.list_dir(loc.parent)
            if info.type == uri.FileType.File and fnmatch.fnmatchcase(info.base_name, loc.name)
            and info.base_name.endswith(".tar") and not info.base_name.startswith(".")]


def resolve_shard_locations(items: list[str]) -> list[Location]:
    """Bucket URIs (`s3://...`) -> their finished shards: a shard object itself, a prefix's shards, or
    the shards a glob in the last part names. Raises ShardError for a URI that names none, so a typo is
    not mistaken for an empty dataset."""
    found: list[Location] = []
    for item in items:
        if glob.has_magic(item):
            matches = _bucket_glob(item)
            if not matches:
                raise ShardError(f"no shard matches {item!r}")
            found.extend(matches)
            continue
        loc = uri.location(item)
        if uri.is_file(loc):
            found.append(loc)
            continue
        shards = list_shard_locations(loc)
        if not shards:
            raise ShardError(f"{loc} holds no finished shard ({{name}}-NNNNNN.tar)")
        found.extend(shards)
    return sorted({s.uri: s for s in found}.values(), key=lambda s: s.uri)


def index_location_for(tar: Location) -> Location:
    """The parquet index beside a shard tar, on any file system."""
    return tar.parent.join(tar.name[: -len(".tar")] + ".index.parquet")


def list_shards(folder: Path, name: str | None = None) -> list[Path]:
    """Finished shards of a folder (optionally one name prefix), sorted; partial files never match."""
    return sorted(p for p in folder.iterdir() if p.is_file() and shard_index(p, name) is not None)


def next_shard_index(folder: Path, name: str = "got") -> int:
    """The index a resumed writer should start at: one past the highest finished shard."""
    if not folder.is_dir():
        return 0
    indexes = [shard_index(p, name) for p in list_shards(folder, name)]
    return max((i for i in indexes if i is not None), default=-1) + 1


def resolve_shard_paths(paths: Sequence[Path | str] | Path | str) -> list[Path]:
    """Expand files, folders (their finished shards) and globs into a sorted, de-duplicated list of
    absolute real paths of local files.

    Real paths are what makes them safe to hand to webdataset, which runs a name starting with
    `pipe:` as a shell command and opens other URL schemes: every path returned starts with '/'.
    Raises ShardError for a path that does not exist (naming a URL as such), a folder without
    shards or a glob that matches nothing, so a typo is not mistaken for an empty dataset.
    """
    items: list[Path | str] = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: set[Path] = set()
    for item in items:
        text = os.fspath(item)
        if glob.has_magic(text):
            matches = [Path(m) for m in glob.glob(text)]
            tars = [m for m in matches if m.is_file() and m.name.endswith(".tar") and not m.name.startswith(".")]
            if not tars:
                raise ShardError(f"no shard matches {text!r}")
            found.update(m.resolve() for m in tars)
            continue
        path = Path(text)
        if path.is_dir():
            shards = list_shards(path)
            if not shards:
                raise ShardError(f"{path} holds no finished shard (no file named like got-000000.tar)")
            found.update(shard.resolve() for shard in shards)
        elif path.is_file():
            found.add(path.resolve())
        elif _URL_RE.match(text):
            raise ShardError(f"{text!r} is not a local file: shards are read from local paths only (URLs such as "
                             "pipe:, http: or s3: are never opened); copy the shards here first")
        else:
            raise ShardError(f"{path} does not exist")
    return sorted(found)


def resolve_shards(paths: ShardSources) -> list[Path | Location]:
    """Local files, folders and globs (`resolve_shard_paths`), bucket URIs (`resolve_shard_locations`)
    and shard Locations in one list, local shards first: what every reader of shards (view, report,
    training) takes, so a bucket is read through the URI layer and never handed to a URL opener.
    Raises ShardError like both."""
    items = [paths] if isinstance(paths, (str, os.PathLike, Location)) else list(paths)
    texts = [item.uri if isinstance(item, Location) else os.fspath(item) for item in items]
    local: list[Path | str] = [text for text in texts if not uri.is_remote(text)]
    buckets = [text for text in texts if uri.is_remote(text)]
    return [*(resolve_shard_paths(local) if local else []), *(resolve_shard_locations(buckets) if buckets else [])]


def split_member_name(name: str) -> tuple[str, str]:
    """Split a tar member name into (sample key, member suffix) the way webdataset does: at the first
    dot of the base name."""
    head, _, base = name.rpartition("/")
    key, dot, suffix = base.partition(".")
    if not dot or not key:
        return name, ""
    return (f"{head}/{key}" if head else key), suffix


def member_tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """A tar header with every field fixed except name and size: what makes shards byte-reproducible."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = MEMBER_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info
