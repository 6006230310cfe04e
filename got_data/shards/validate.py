"""Checking shards end to end, so a broken shard is caught before a training run trips on it.

`validate_paths` streams every tar once (memory holds one sample), checks each sample's members,
record, images and index rows, then the folder's manifest, and returns a ValidationReport whose
issues carry a stable `kind` (see ERROR_KINDS) that scripts and tests can match on.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from got_data import uri
from got_data.errors import RecordError, ShardError
from got_data.records import READABLE_SCHEMA_VERSIONS, parse_record
from got_data.shards.image_formats import ImageFormatError, open_claimed
from got_data.shards.index import IndexRow, read_index
from got_data.shards.layout import (
    JSON_MEMBER,
    MANIFEST_FILE,
    index_location_for,
    index_path_for,
    resolve_shard_locations,
    resolve_shard_paths,
    shard_in_run,
)
from got_data.shards.manifest import read_manifest
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy
from got_data.shards.tar_stream import RawSample, TarStream, TarTruncatedError, TarUnreadableError
from got_data.uri import Location

ERROR_KINDS = (
    "tar_unreadable",  # not a tar: zero bytes, another format, garbled header
    "tar_truncated",  # a member's data or the end-of-archive marker is missing
    "missing_member",  # the record lists an image the sample lacks
    "orphan_member",  # a member no record claims (image without record, extra member)
    "member_refused",  # a link, sparse, non-file or oversized member: never read (tar_policy.py)
    "duplicate_key",  # a key's members are split across the tar, or a member repeats
    "bad_json",  # the record member is not UTF-8 JSON
    "schema",  # the record breaks the schema or an invariant (box range, spans, roles...)
    "key_mismatch",  # the record's key differs from the sample's key in the tar
    "image_format",  # the image's bytes are not the format its member name claims (never parsed as another)
    "image_undecodable",  # Pillow cannot decode the image, or it exceeds the pixel limit
    "image_mismatch",  # the image's sha256, size or format differs from the record's ImageInfo
    "index_mismatch",  # the parquet index is missing or disagrees with the tar
    "manifest_mismatch",  # manifest.json disagrees with the shards on disk
)

DEFAULT_MAX_IMAGE_PIXELS = 64 * 1024 * 1024
DEFAULT_KEEP_ISSUES = 20


@dataclass(frozen=True)
class Issue:
    """One problem: `key` is None for problems of a whole shard or folder."""

    kind: str
    path: str
    key: str | None
    reason: str


@dataclass
class ValidationReport:
    """Counts for everything checked; `issues` keeps the first few of each kind so memory stays flat."""

    shards: int = 0
    samples: int = 0
    valid: int = 0
    issue_counts: Counter[str] = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)
    keep_per_kind: int = DEFAULT_KEEP_ISSUES

    @property
    def invalid(self) -> int:
        return self.samples - self.valid

    @property
    def ok(self) -> bool:
        return not self.issue_counts

    def kinds(self) -> set[str]:
        return set(self.issue_counts)

    def add(self, kind: str, path: Path | Location | str, key: str | None, reason: str) -> None:
        assert kind in ERROR_KINDS, kind
        self.issue_counts[kind] += 1
        if self.issue_counts[kind] <= self.keep_per_kind:
            self.issues.append(Issue(kind=kind, path=str(path), key=key, reason=reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "samples": self.samples,
            "valid": self.valid,
            "invalid": self.invalid,
            "issue_counts": dict(sorted(self.issue_counts.items())),
            "issues": [vars(issue) for issue in self.issues],
        }


@dataclass
class _ShardResult:
    path: Path | Location
    complete: bool = False
    samples: int = 0
    sha256: str | None = None
    size: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class _SampleChecker:
    """Checks one sample; every problem goes to `problems` as (kind, reason)."""

    def __init__(self, path: Path | Location, index: dict[tuple[str, str], IndexRow] | None, max_image_pixels: int) -> None:
        self.path = path
        self.index = index
        self.max_image_pixels = max_image_pixels

    def check(self, raw: RawSample, kinds: Counter[str]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if raw.repeated:
            problems.append(("duplicate_key", "the key's members are not adjacent: it appears earlier in the tar"))
        problems += [("member_refused", f"{refusal.reason}: {refusal.detail}") for refusal in raw.refused]
        members: dict[str, bytes] = {}
        for suffix, data in raw.members:
            if suffix in members:
                problems.append(("duplicate_key", f"member {raw.key}.{suffix} appears twice"))
            members[suffix] = data
        digests = {suffix: hashlib.sha256(data).hexdigest() for suffix, data in members.items()}
        json_row = self._check_index_rows(raw.key, members, digests, problems)
        if JSON_MEMBER not in members:
            if members:
                problems.append(("orphan_member", f"members {sorted(members)} have no record ({raw.key}.json missing)"))
            return problems
        try:
            data = json.loads(members.pop(JSON_MEMBER).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(("bad_json", f"record JSON does not parse: {exc}"))
            return problems
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            kinds[data["kind"]] += 1
        try:
            record = parse_record(data if isinstance(data, dict) else json.dumps(data))
        except RecordError as exc:
            problems.append(("schema", str(exc)))
            return problems
        if record.key != raw.key:
            problems.append(("key_mismatch", f"the record's key is {record.key}"))
        if json_row is not None and (json_row.kind, json_row.object_count) != (record.kind, record.object_count()):
            problems.append(
                ("index_mismatch", f"index says {json_row.kind} with {json_row.object_count} object(s), the record "
                 f"is {record.kind} with {record.object_count()}")
            )
        for info in record.images:
            payload = members.pop(info.member, None)
            if payload is None:
                problems.append(("missing_member", f"the record's {info.role} image {raw.key}.{info.member} is missing"))
                continue
            problems += self._check_image(payload, digests[info.member], info.member, info.sha256, info.width, info.height, info.format)
        problems += [("orphan_member", f"{raw.key}.{suffix} is not listed by the record") for suffix in sorted(members)]
        return problems

    def _check_image(
        self, data: bytes, actual_sha: str, member: str, sha256: str, width: int, height: int, fmt: str
    ) -> list[tuple[str, str]]:
        problems = []
        if actual_sha != sha256:
            problems.append(("image_mismatch", f"{member}: sha256 {actual_sha[:12]}… but the record says {sha256[:12]}…"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with open_claimed(data, member) as image:
                    if image.width * image.height > self.max_image_pixels:
                        return problems + [
                            ("image_undecodable", f"{member}: {image.width}x{image.height} exceeds the pixel limit")
                        ]
                    actual = (image.format, image.width, image.height)
                    image.load()
        except ImageFormatError as exc:
            return problems + [("image_format", str(exc))]
        # Pillow signals corrupt input with many exception types (OSError, SyntaxError, ValueError,
        # DecompressionBomb*, zlib/struct errors); all of them mean the same thing here.
        except Exception as exc:  # noqa: BLE001
            return problems + [("image_undecodable", f"{member}: {type(exc).__name__}: {exc}")]
        if actual != (fmt, width, height):
            problems.append(
                ("image_mismatch", f"{member}: decoded {actual[0]} {actual[1]}x{actual[2]}, record says {fmt} {width}x{height}")
            )
        return problems

    def _check_index_rows(
        self, key: str, members: dict[str, bytes], digests: dict[str, str], problems: list[tuple[str, str]]
    ) -> IndexRow | None:
        """Match each member against its index row (consumed); returns the record member's row."""
        if self.index is None:
            return None
        json_row = None
        for suffix, data in members.items():
            row = self.index.pop((key, suffix), None)
            if row is None:
                problems.append(("index_mismatch", f"{key}.{suffix} is not in the index"))
            elif row.size != len(data) or row.sha256 != digests[suffix]:
                problems.append(("index_mismatch", f"{key}.{suffix}: size or sha256 differs from the index"))
            elif suffix == JSON_MEMBER:
                json_row = row
        return json_row


def _validate_shard(path: Path | Location, report: ValidationReport, max_image_pixels: int,
                    policy: MemberPolicy) -> _ShardResult:
    result = _ShardResult(path=path)
    index: dict[tuple[str, str], IndexRow] | None
    index_path = index_location_for(path) if isinstance(path, Location) else index_path_for(path)
    try:
        index = {(row.key, row.member): row for row in read_index(index_path)}
    except ShardError as exc:
        report.add("index_mismatch", path, None, str(exc))
        index = None
    checker = _SampleChecker(path, index, max_image_pixels)
    stream = TarStream(path, policy)
    try:
        for raw in stream.samples():
            result.samples += 1
            report.samples += 1
            problems = checker.check(raw, result.kinds)
            for kind, reason in problems:
                report.add(kind, path, raw.key, reason)
            if not problems:
                report.valid += 1
    except TarTruncatedError as exc:
        report.add("tar_truncated", path, None, str(exc))
        return result
    except TarUnreadableError as exc:
        report.add("tar_unreadable", path, None, str(exc))
        return result
    result.complete, result.sha256, result.size = True, stream.sha256, stream.size
    if index:
        leftover = sorted(index)
        report.add(
            "index_mismatch", path, leftover[0][0],
            f"the index lists {len(leftover)} member(s) the tar lacks, first {'.'.join(leftover[0])}"
        )
    return result


def _check_manifest(folder: Path | Location, results: list[_ShardResult], whole_folder: bool,
                    report: ValidationReport) -> None:
    manifest_path = folder.join(MANIFEST_FILE) if isinstance(folder, Location) else folder / MANIFEST_FILE
    try:
        manifest = read_manifest(manifest_path)
    except ShardError as exc:
        report.add("manifest_mismatch", manifest_path, None, str(exc))
        return
    if manifest["schema_version"] not in READABLE_SCHEMA_VERSIONS:
        report.add("manifest_mismatch", manifest_path, None,
                   f"schema {manifest['schema_version']}, this got-data reads {', '.join(READABLE_SCHEMA_VERSIONS)}")
    entries = {entry["file"]: entry for entry in manifest["shards"] if isinstance(entry, dict) and isinstance(entry.get("file"), str)}
    name = manifest.get("name")
    mine = [r for r in results if shard_in_run(r.path.name, name)]  # its annotators' shards too
    for result in mine:
        entry = entries.get(result.path.name)
        if entry is None:
            report.add("manifest_mismatch", manifest_path, None, f"{result.path.name} is not in the manifest")
            continue
        if not result.complete:
            continue
        actual = {"samples": result.samples, "sha256": result.sha256, "size": result.size}
        for field_name, value in actual.items():
            if entry.get(field_name) != value:
                report.add(
                    "manifest_mismatch", manifest_path, None,
                    f"{result.path.name}: {field_name} is {value}, manifest says {entry.get(field_name)}"
                )
    if not whole_folder:
        return
    present = {r.path.name for r in mine}
    for missing in sorted(set(entries) - present):
        report.add("manifest_mismatch", manifest_path, None, f"{missing} is in the manifest but not on disk")
    if all(r.complete for r in mine):
        kinds = sum((r.kinds for r in mine), Counter())
        total = sum(r.samples for r in mine)
        if manifest["total_samples"] != total:
            report.add("manifest_mismatch", manifest_path, None, f"total_samples {manifest['total_samples']}, shards hold {total}")
        if manifest["counts_by_kind"] != dict(kinds):
            report.add("manifest_mismatch", manifest_path, None, f"counts_by_kind {manifest['counts_by_kind']}, shards hold {dict(kinds)}")


def validate_paths(
    paths: list[Path] | list[str] | Path | str,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    keep_per_kind: int = DEFAULT_KEEP_ISSUES,
    member_policy: MemberPolicy = DEFAULT_POLICY,
) -> ValidationReport:
    """Validate shards (files, folders, globs). Never raises for a bad shard: every fault is an Issue.

    Members `member_policy` refuses (links, sparse, over their cap) are reported, never read.
    Raises ShardError only when a path does not exist or a glob matches nothing. A folder's
    manifest.json, when present, is checked against its shards (fully when the folder itself is given).
    """
    items: list[Path | str] = [paths] if isinstance(paths, (str, Path)) else list(paths)
    buckets = [str(p) for p in items if uri.is_remote(str(p))]  # bucket URIs, through the URI layer
    items = [p for p in items if not uri.is_remote(str(p))]
    folders: dict[str, Path | Location] = {str(Path(p).resolve()): Path(p).resolve() for p in items if Path(p).is_dir()}
    folders.update({loc.uri: loc for loc in map(uri.location, buckets) if not uri.is_file(loc)})
    report = ValidationReport(keep_per_kind=keep_per_kind)
    by_folder: dict[str, list[_ShardResult]] = {}
    parents: dict[str, Path | Location] = {}
    shards: list[Path | Location] = [*(resolve_shard_paths(items) if items else []), *resolve_shard_locations(buckets)]
    for path in shards:
        report.shards += 1
        result = _validate_shard(path, report, max_image_pixels, member_policy)
        parent = path.parent if isinstance(path, Location) else path.parent.resolve()
        parents[str(parent)] = parent
        by_folder.setdefault(str(parent), []).append(result)
    for name in sorted(set(folders) | set(by_folder)):
        folder = folders.get(name) or parents[name]
        manifest = folder.join(MANIFEST_FILE) if isinstance(folder, Location) else folder / MANIFEST_FILE
        if uri.exists(manifest):
            _check_manifest(folder, by_folder.get(name, []), name in folders, report)
    return report
