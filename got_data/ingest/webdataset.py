"""WebDataset tar shards as img2dataset writes them: `KEY.jpg` with optional `KEY.txt` and/or `KEY.json`.

Shards are uncompressed tars, streamed (tarfile 'r|' mode), so a shard is read once, front to back, and only one
sample's members are in memory at a time; members we do not use (embeddings, other metadata) are
skipped without being read. A sample's members must be adjacent, as WebDataset requires. The
caption is `KEY.txt` when present, else the "caption" field of `KEY.json`.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from got_data.errors import InputError
from got_data.ingest.captions import DEFAULT_MAX_CAPTION_CHARS, Caption, caption_from_bytes, caption_from_value
from got_data.ingest.items import (
    IMAGE_EXTENSIONS,
    MISSING_FILE,
    BytesImage,
    InputItem,
    Source,
    dataset_name,
    problem_item,
)

_CAPTION_MEMBERS = ("txt", "json")


class WebDatasetSource(Source):
    """The samples of one or more shards, shards in sorted path order, samples in tar order.

    input_ref is `SHARD#KEY`, SHARD relative to the shards' common folder.
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        dataset: str | None = None,
        max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    ) -> None:
        self.shards = sorted(Path(p) for p in paths)
        if not self.shards:
            raise InputError("no shards given")
        for shard in self.shards:
            if not shard.is_file():
                raise InputError(f"shard {shard} does not exist or is not a file")
        parents = [str(shard.resolve().parent) for shard in self.shards]
        self.root = Path(os.path.commonpath(parents))
        default_name = self.shards[0] if len(self.shards) == 1 else self.root
        self.dataset = dataset or dataset_name(default_name)
        self.max_caption_chars = max_caption_chars

    def __iter__(self) -> Iterator[InputItem]:
        for shard in self.shards:
            yield from self._samples(shard)

    def _samples(self, shard: Path) -> Iterator[InputItem]:
        shard_ref = os.path.relpath(shard.resolve(), self.root).replace(os.sep, "/")
        for key, members in iter_tar_samples(shard, self._wanted):
            yield self._item(shard_ref, key, members)

    @staticmethod
    def _wanted(ext: str) -> bool:
        """Which members are read (the rest are skipped unread)."""
        return ext in IMAGE_EXTENSIONS or ext in _CAPTION_MEMBERS

    def _item(self, shard_ref: str, key: str, members: dict[str, bytes]) -> InputItem:
        ref = f"{shard_ref}#{key}"
        caption, caption_error = self._caption(members)
        image_ext = next((ext for ext in members if ext in IMAGE_EXTENSIONS), None)
        if image_ext is None:
            detail = f"sample {key!r} has no image member (members: {sorted(members) or 'none we read'})"
            return problem_item(self.dataset, ref, MISSING_FILE, detail, caption=caption, caption_error=caption_error)
        return InputItem(
            input_ref=ref, dataset=self.dataset, image=BytesImage(members[image_ext]), caption=caption,
            caption_error=caption_error,
        )

    def _caption(self, members: dict[str, bytes]) -> Caption:
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


def iter_tar_samples(shard: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample of a shard, streamed; only members `wanted` are read.

    Raises InputError when a sample's members are not adjacent or the tar is damaged or cut short.
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(shard, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                member_key, ext = split_member_name(member.name)
                if member_key != key:
                    if key is not None:
                        yield key, members
                    if member_key in seen:
                        raise InputError(
                            f"shard {shard}: the members of sample {member_key!r} are not adjacent; "
                            "rebuild the shard with its members sorted by name (e.g. tar --sort=name)"
                        )
                    seen.add(member_key)
                    key, members = member_key, {}
                if wanted(ext):
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        members[ext] = extracted.read()
            end_offset = tar.offset
        _check_end_of_archive(shard, end_offset, len(seen))
        if key is not None:
            yield key, members
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"shard {shard} is damaged or not a tar file ({exc}); read {len(seen)} samples") from exc


def _check_end_of_archive(shard: Path, offset: int, samples_read: int) -> None:
    """tarfile ends a stream silently at a cut or garbled header; a whole tar has a zero block there."""
    with open(shard, "rb") as f:
        f.seek(offset)
        block = f.read(tarfile.BLOCKSIZE)
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
