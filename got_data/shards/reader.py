"""Reading shards back: sample by sample from tars, or from a `webdataset` pipeline's raw dicts.

Training code usually builds `webdataset.WebDataset(urls)` (shuffling, workers) and maps
`decode_sample`; scripts and tests that just need every sample use `iter_samples`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from got_data.errors import RecordError, ShardError
from got_data.records import EditRecord, MultiTurnRecord, T2IRecord, parse_record
from got_data.shards.layout import JSON_MEMBER, ShardSources, resolve_shards
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy
from got_data.shards.tar_stream import RawSample, TarStream

AnyRecord = T2IRecord | EditRecord | MultiTurnRecord


@dataclass(frozen=True)
class ShardSample:
    """A validated record with its image bytes keyed by member ('jpg', 'source.png', ...)."""

    key: str
    record: AnyRecord
    images: dict[str, bytes]
    shard: str


def _build(key: str, json_data: Any, members: dict[str, Any], shard: str) -> ShardSample:
    if json_data is None:
        raise ShardError(f"{shard}: sample {key} has no {JSON_MEMBER} member (members: {sorted(members)})")
    try:
        record = parse_record(json_data)
    except RecordError as exc:
        raise ShardError(f"{shard}: sample {key}: {exc}") from exc
    if record.key != key:
        raise ShardError(f"{shard}: sample {key} holds a record with key {record.key}")
    images: dict[str, bytes] = {}
    for info in record.images:
        payload = members.get(info.member)
        if payload is None:
            raise ShardError(f"{shard}: sample {key} lacks its {info.member!r} image")
        if not isinstance(payload, bytes):
            raise ShardError(
                f"{shard}: sample {key}: member {info.member!r} is {type(payload).__name__}, not bytes; "
                "map decode_sample before any webdataset .decode()"
            )
        images[info.member] = payload
    extra = sorted(set(members) - set(images))
    if extra:
        raise ShardError(f"{shard}: sample {key} has members {extra} its record does not list")
    return ShardSample(key=key, record=record, images=images, shard=shard)


def _absent(value: Any) -> bool:
    """Tabular readers give every row the union of all members: None (HF) or NaN (Ray) where absent."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def decode_sample(wds_sample: dict[str, Any]) -> ShardSample:
    """Turn a raw webdataset sample (`__key__`, `json`, `jpg`... as bytes) into a ShardSample.

    Also takes rows of `ray.data.read_webdataset(..., decoder=None)`; members whose value is None or
    NaN are treated as absent (tabular readers fill in the union of all members).

    Raises ShardError when the record does not validate or an image member is missing or extra.
    """
    try:
        key = wds_sample["__key__"]
    except KeyError as exc:
        raise ShardError("not a webdataset sample: no __key__") from exc
    shard = str(wds_sample.get("__url__", ""))
    data = wds_sample.get(JSON_MEMBER)
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    members = {k: v for k, v in wds_sample.items() if not k.startswith("__") and k != JSON_MEMBER and not _absent(v)}
    return _build(key, data, members, shard)


def sample_from_raw(raw: RawSample, shard: str) -> ShardSample:
    """A ShardSample from one raw tar sample; raises ShardError when it does not validate."""
    names = [suffix for suffix, _ in raw.members]
    if raw.refused:
        first = raw.refused[0]
        raise ShardError(f"{shard}: sample {raw.key}: member not read ({first.reason}): {first.detail}")
    if raw.repeated or len(set(names)) != len(names):
        raise ShardError(f"{shard}: sample {raw.key} is not one contiguous run of distinct members")
    members = dict(raw.members)
    return _build(raw.key, members.pop(JSON_MEMBER, None), members, shard)


def iter_samples(
    paths: ShardSources, member_policy: MemberPolicy = DEFAULT_POLICY
) -> Iterator[ShardSample]:
    """Every sample of the given shards (files, folders, globs, bucket URIs such as `s3://bucket/got`,
    or one shard's Location of the URI layer), shards in sorted order.

    Streams: memory holds one sample at a time, each member within `member_policy`'s caps. Raises
    ShardError on a sample that does not validate, a member the policy refuses (link, sparse,
    oversized), or a tar that is unreadable or truncated (run `got-data validate` for a full report).
    """
    for path in resolve_shards(paths):
        for raw in TarStream(path, member_policy).samples():
            yield sample_from_raw(raw, str(path))

