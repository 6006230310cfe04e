"""Which files a job may read: the one policy every input source applies to every path it opens.

A job reads only what it was given. Inputs come from other people (a manifest row, a sidecar
caption, a symlink in a folder), so a path they name is resolved to its real path (symlinks
followed, `..` collapsed) and must lie under an allowed root: the input folder, the manifest's own
folder, or a folder the user allowed explicitly (`--allow-paths-outside ROOT`). A symlink is thus
followed only when its target lies inside a root. Only regular files are read: a FIFO would block
the reader, a device (`/dev/zero`) never ends, `/proc` files are not ours to publish.

A refused path is a `PathRefused` with a stable reason (`outside_input_root`, `not_a_regular_file`,
`missing_file`); sources turn it into the input's problem, so it becomes a reject row and the job
goes on. Details name paths relative to their root only, never host paths: rejects are published.

Object storage (`s3://` and the other schemes of `got_data/uri.py`): a root may also be a prefix
(`s3://bucket/prefix`), the input's own (a bucket folder, the prefix a manifest or shards lie in) or
one the user allowed (`--allow-paths-outside s3://bucket/other`). An object URI is normalised (`..`
and `.` segments collapsed) and must lie under a prefix root; a store has no links, so that is all
there is to check, and the object is read where it is decoded. A URI of any other scheme (`http`,
`ftp`) is refused by the sources as `url_not_supported`, and so is one that carries credentials.

Between the check and the read the tree may change (a folder swapped for a link): `open_regular`
walks the checked real path from `/` one component at a time without following any link, so what
it opens is the file the check saw a path to, or nothing. Not covered: hard links and bind mounts
(they are not links to follow; whoever can make them inside the input could copy the file there),
and a file rewritten in place while the job runs.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from got_data import uri
from got_data.errors import InputError, InputRefused

# Reasons a path is refused (stable strings: they appear in rejects files).
OUTSIDE_INPUT_ROOT = "outside_input_root"
NOT_A_REGULAR_FILE = "not_a_regular_file"
MISSING_FILE = "missing_file"
URL_NOT_SUPPORTED = "url_not_supported"
PATH_REASONS = (OUTSIDE_INPUT_ROOT, NOT_A_REGULAR_FILE)

LOCAL_SCHEMES = ("file",)  # URI schemes that name local paths; the paths then obey the roots like any other
ALLOW_OPTION = "--allow-paths-outside"


class PathRefused(InputRefused):
    """A path the job may not read; `reason` is one of PATH_REASONS or missing_file."""


@dataclass(frozen=True)
class InputRoots:
    """The folders and store prefixes a job may read from (real paths, normalised URIs). `what` names
    the first one in messages."""

    roots: tuple[str, ...]
    what: str = "the input folder"

    @classmethod
    def under(cls, root: str | os.PathLike[str], allowed: Iterable[str | os.PathLike[str]] = (),
              what: str = "the input folder") -> InputRoots:
        """`root` (the input folder or prefix, the manifest's folder) plus the folders and prefixes the
        user allowed.

        Raises InputError when an allowed folder does not exist or an allowed prefix holds no
        object: a typo must not silently refuse every row that pointed there.
        """
        extra = []
        for folder in allowed:
            text = os.fspath(folder)
            if uri.is_remote(text):
                prefix = _allowed_uri(text)
                if not uri.is_dir(prefix):
                    raise InputError(f"{ALLOW_OPTION} {prefix}: no objects under that prefix")
                extra.append(prefix)
                continue
            if uri.scheme_of(text) not in (None, *LOCAL_SCHEMES):
                raise InputError(f"{ALLOW_OPTION} {text}: not a folder or a storage prefix ({', '.join(sorted(uri.REMOTE_SCHEMES))})")
            real = os.path.realpath(unquote(urlparse(text).path) if uri.scheme_of(text) else text)
            if not os.path.isdir(real):
                raise InputError(f"{ALLOW_OPTION} {text}: not an existing folder")
            extra.append(real)
        first = _allowed_uri(os.fspath(root)) if uri.is_remote(root) else os.path.realpath(root)
        return cls(roots=(first, *extra), what=what)

    def root_of(self, real: str) -> str | None:
        """The allowed root `real` (a real path or a normalised URI) lies under, or None."""
        remote = uri.is_remote(real)
        sep = "/" if remote else os.sep
        for root in self.roots:
            if uri.is_remote(root) == remote and (real == root or real.startswith(root.rstrip(sep) + sep)):
                return root
        return None

    def ref(self, real: str) -> str:
        """`real` relative to its root, for messages (never a host path)."""
        root = self.root_of(real)
        if root is None:
            return "(outside the roots)"
        if uri.is_remote(real):
            return real[len(root):].lstrip("/") or posixpath.basename(real)
        return os.path.relpath(real, root).replace(os.sep, "/")

    def confine(self, path: str | os.PathLike[str], shown: str | None = None) -> str:
        """The real path of `path` when the job may read it as a regular file (an object URI: when it
        lies under a prefix root and is an object); else PathRefused.

        `shown` is how messages name the path (default: relative to its root once resolved).
        """
        if uri.is_remote(path):
            return self._confine_object(os.fspath(path), shown, must_exist=True)
        real = os.path.realpath(path)
        if self.root_of(real) is None:
            raise PathRefused(
                OUTSIDE_INPUT_ROOT,
                f"{shown or 'the path'} resolves outside {self.what}; inputs are read only from there "
                f"(to read another folder, name it with {ALLOW_OPTION})",
            )
        name = shown or self.ref(real)
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            raise PathRefused(MISSING_FILE, f"{name} does not exist") from None
        except OSError as exc:
            raise PathRefused(NOT_A_REGULAR_FILE, f"{name} cannot be inspected ({exc.strerror or exc})") from None
        if not stat.S_ISREG(mode):
            raise PathRefused(NOT_A_REGULAR_FILE, f"{name} is {_kind(mode)}, not a regular file")
        return real

    def locate(self, text: str, base: str | os.PathLike[str]) -> str:
        """The real path or object URI a manifest cell names: a path relative to `base` (the manifest's
        folder or prefix), an absolute path, a `file://` URI or an object URI; it must lie under a root.
        An object is not looked up here (one request per row): a missing one fails where it is read.
        The cell's own text is not echoed (it may be a host path)."""
        scheme = uri.scheme_of(text)
        if scheme in uri.REMOTE_SCHEMES:
            return self._confine_object(text, None, must_exist=False)
        if scheme in LOCAL_SCHEMES:
            text = unquote(urlparse(text).path)
        if os.path.isabs(text):
            return self.confine(text)
        if uri.is_remote(base):
            return self._confine_object(f"{os.fspath(base).rstrip('/')}/{text}", None, must_exist=False)
        return self.confine(os.path.join(base, text))

    def _confine_object(self, text: str, shown: str | None, must_exist: bool) -> str:
        target = _object_uri(text)
        if self.root_of(target) is None:
            raise PathRefused(
                OUTSIDE_INPUT_ROOT,
                f"{shown or 'the object'} lies outside {self.what}; inputs are read only from there "
                f"(to read another prefix, name it with {ALLOW_OPTION})",
            )
        if must_exist:
            found = uri.file_type(target)
            name = shown or self.ref(target)
            if found == uri.FileType.NotFound:
                raise PathRefused(MISSING_FILE, f"{name} does not exist")
            if found != uri.FileType.File:
                raise PathRefused(NOT_A_REGULAR_FILE, f"{name} is a prefix, not an object")
        return target


def _object_uri(text: str) -> str:
    """An object URI with its `.`/`..` segments collapsed (a store would take them literally, or not:
    either way the check must see the key that is read); PathRefused(url_not_supported) when it
    carries credentials."""
    scheme, _, rest = text.partition("://")  # split by hand: a key may hold `#` or `?`, which are not URL syntax here
    bucket, _, key = rest.partition("/")
    if "@" in bucket or not bucket:
        raise PathRefused(URL_NOT_SUPPORTED, "an object URI must name a bucket and carry no credentials "
                                             "(they come from the environment)")
    key = posixpath.normpath("/" + key).lstrip("/")
    return f"{scheme.lower()}://{bucket}/{key}".rstrip("/")


def _allowed_uri(text: str) -> str:
    try:
        return _object_uri(text)
    except PathRefused as exc:
        raise InputError(f"{ALLOW_OPTION} / input {text.split('@')[-1]}: {exc.detail}") from None


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_PATH: a folder on the way needs search permission only, as in an ordinary open of the whole path.
_FOLDER = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY


def open_regular(path: str) -> BinaryIO:
    """Open a checked real path for reading: every component opened without following a link (a
    link that appeared since the check is refused as `outside_input_root`), no blocking on a FIFO,
    and refused unless it is (still) a regular file. Raises PathRefused or OSError."""
    parts = [part for part in os.path.abspath(path).split(os.sep) if part]
    if not parts:
        raise PathRefused(NOT_A_REGULAR_FILE, "it is a folder, not a regular file")
    fd = os.open(os.sep, _FOLDER | _CLOEXEC)
    try:
        for folder in parts[:-1]:
            fd, parent = _open_beneath(folder, _FOLDER, fd), fd
            os.close(parent)
        fd, parent = _open_beneath(parts[-1], os.O_RDONLY | os.O_NONBLOCK, fd), fd
        os.close(parent)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PathRefused(NOT_A_REGULAR_FILE, f"it is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_beneath(name: str, flags: int, dir_fd: int) -> int:
    """`name` inside the open folder `dir_fd`, never through a link."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, dir_fd):
            raise PathRefused(OUTSIDE_INPUT_ROOT, "a symbolic link appeared on its path after it was checked") from None
        raise


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
