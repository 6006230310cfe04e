"""WebDataset tar shards (img2dataset's `KEY.jpg` + `KEY.txt`/`KEY.json`; edit pairs' `KEY.source.*`...):
what a sample becomes is the record kind's (`SampleInputs`).

Shards are uncompressed tars, streamed (tarfile 'r|' mode), so a shard is read once, front to back, and only one
sample's members are in memory at a time; members we do not use (embeddings, other metadata) are
skipped without being read. A sample's members must be adjacent, as WebDataset requires.

Members we would read are first put to the tar member policy (`got_data/shards/tar_policy.py`): a
link, a sparse or non-file member, one over its extension's cap, or a second member of the same name in
a sample is never read, and the sample becomes a reject row with that reason.
"""

from __future__ import annotations

import copy
import os
import posixpath
import tarfile
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Generic

from got_data import uri
from got_data.errors import InputError
from got_data.ingest.items import InputKind, ItemT, Source, dataset_name
from got_data.ingest.paths import InputRoots
from got_data.shards.tar_policy import DEFAULT_POLICY, DUPLICATE_MEMBER, MemberPolicy, Refusal


class SampleInputs(InputKind[ItemT]):
    """What a record kind makes of a tar sample."""

    @abstractmethod
    def wanted_member(self, ext: str) -> bool:
        """Whether a member with this extension is read (the rest are skipped unread)."""

    @abstractmethod
    def from_sample(self, dataset: str, input_ref: str, key: str, members: dict[str, bytes]) -> ItemT:
        """The item for one sample whose wanted members were all allowed, by extension."""


class WebDatasetSource(Source[ItemT], Generic[ItemT]):
    """The samples of one or more shards, as `items` makes them: shards in sorted path order,
    samples in tar order.

    input_ref is `SHARD#KEY`, SHARD relative to the shards' common folder. Every shard must be a
    regular file that resolves inside that folder (or a folder in `allow_outside`): a shard that
    links elsewhere is refused when the source is opened, before any work. A sample with a refused
    member is a reject item with the policy's reason.
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        items: SampleInputs[ItemT],
        dataset: str | None = None,
        member_policy: MemberPolicy = DEFAULT_POLICY,
        allow_outside: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.items = items
        self.member_policy = member_policy
        texts = [os.fspath(p) for p in paths]
        if not texts:
            raise InputError("no shards given")
        self.remote = uri.is_remote(texts[0])
        if any(uri.is_remote(t) != self.remote for t in texts):
            raise InputError("shards must be all local files or all objects in one store")
        self.shards: list[Path | str] = sorted((uri.location(t).uri for t in texts) if self.remote
                                               else (Path(t) for t in texts))
        folder = _common_folder(self.shards, self.remote)
        self.roots = InputRoots.under(folder, allow_outside, what="the shards' folder")
        self.root = self.roots.roots[0]  # the shards' folder: real path, or its normalised URI
        checked = [self.roots.confine(shard, shown=f"shard {uri.location(shard).name}") for shard in self.shards]
        if self.remote:  # objects are read under the URI the check saw (`..` collapsed)
            self.shards = list(checked)
        default_name = self.shards[0] if len(self.shards) == 1 else folder
        self.dataset = dataset or dataset_name(default_name)

    @property
    def location(self) -> str:
        return self.root

    def __iter__(self) -> Iterator[ItemT]:
        for shard in self.shards:
            shard_ref = self.shard_ref(shard)
            for sample in iter_tar_samples(shard, self.items.wanted_member, self.member_policy):
                ref = f"{shard_ref}#{sample.key}"
                refused = sample.refusal()
                if refused is not None:
                    yield self.items.problem(self.dataset, ref, *refused)
                else:
                    yield self.items.from_sample(self.dataset, ref, sample.key, sample.members)

    def of_shards(self, positions: Sequence[int]) -> WebDatasetSource[ItemT]:
        """This source reading only its shards at these positions (an annotator's partition); input
        references stay relative to the whole input's folder, so they match a whole run's."""
        part = copy.copy(self)
        part.shards = [self.shards[i] for i in positions]
        return part

    def shard_ref(self, shard: Path | str) -> str:
        """The shard's path relative to the root it lies in (input references never hold host paths)."""
        return self.roots.ref(str(shard) if self.remote else os.path.realpath(shard))


def _common_folder(shards: list[Path | str], remote: bool) -> str:
    """The folder (or prefix) all the shards lie in."""
    if not remote:
        return os.path.commonpath([os.path.abspath(Path(shard).parent) for shard in shards])
    scheme = str(shards[0]).split("://", 1)[0]
    parents = [str(shard).split("://", 1)[1].rsplit("/", 1)[0] for shard in shards]
    return f"{scheme}://{posixpath.commonpath(parents)}"


@dataclass
class TarSample:
    """One sample of an input tar: the members read, by extension, and those refused unread."""

    key: str
    members: dict[str, bytes] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)

    def refusal(self) -> tuple[str, str] | None:
        """(reason, detail) of the first refused member, for a reject row; None when none was refused."""
        if not self.refused:
            return None
        first = self.refused[0]
        more = f" (and {len(self.refused) - 1} more refused member(s))" if len(self.refused) > 1 else ""
        return first.reason, first.detail + more


def iter_tar_samples(
    shard: Path | str, wanted: Callable[[str], bool], policy: MemberPolicy = DEFAULT_POLICY
) -> Iterator[TarSample]:
    """Every sample of a shard, streamed; only members `wanted` (by extension) and allowed by `policy` are read.

    Directories are skipped. Raises InputError when a sample's members are not adjacent or the tar is
    damaged or cut short.
    """
    sample: TarSample | None = None
    seen: set[str] = set()
    try:
        with uri.open_input(shard) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if member.isdir():
                    continue
                member_key, ext = split_member_name(member.name)
                if sample is None or member_key != sample.key:
                    if sample is not None:
                        yield sample
                    if member_key in seen:
                        raise InputError(
                            f"shard {shard}: the members of sample {member_key!r} are not adjacent; "
                            "rebuild the shard with its members sorted by name (e.g. tar --sort=name)"
                        )
                    seen.add(member_key)
                    sample = TarSample(member_key)
                if wanted(ext):
                    _read_member(tar, member, ext, sample, policy)
            _check_end_of_archive(shard, raw, tar.offset, len(seen))
        if sample is not None:
            yield sample
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"shard {shard} is damaged or not a tar file ({exc}); read {len(seen)} samples") from exc


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, ext: str, sample: TarSample, policy: MemberPolicy) -> None:
    refusal = policy.refusal(member)
    if refusal is None and ext in sample.members:
        refusal = Refusal(member.name, DUPLICATE_MEMBER, f"{member.name} appears twice in the sample; which one is "
                          "meant is unknown")
    if refusal is not None:
        sample.refused.append(refusal)
        return
    extracted = tar.extractfile(member)
    assert extracted is not None, "a regular member always has data"
    sample.members[ext] = extracted.read(member.size)


def _check_end_of_archive(shard: Path | str, raw: IO[bytes], offset: int, samples_read: int) -> None:
    """tarfile ends a stream silently at a cut or garbled header; a whole tar has a zero block there."""
    raw.seek(offset)
    block = raw.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise InputError(
            f"shard {shard} is cut short or damaged at byte {offset} (after {samples_read} samples); "
            "re-download or rebuild it"
        )


def split_member_name(name: str) -> tuple[str, str]:
    """WebDataset's rule: key = folder + file name up to its first dot; extension = the rest, lower-cased."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""
