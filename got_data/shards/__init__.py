"""Webdataset shards of GoT records: writing (crash-safe, reproducible), reading, indexes, manifests, validation."""

from got_data.shards.index import IndexRow, read_index
from got_data.shards.layout import next_shard_index, resolve_shard_paths
from got_data.shards.manifest import build_manifest, read_manifest, write_manifest
from got_data.shards.reader import ShardSample, decode_sample, iter_samples
from got_data.shards.stream import TarTruncatedError, TarUnreadableError
from got_data.shards.validate import ERROR_KINDS, Issue, ValidationReport, validate_paths
from got_data.shards.writer import ShardInfo, ShardWriter, check_sample

__all__ = [
    "ERROR_KINDS", "IndexRow", "Issue", "ShardInfo", "ShardSample", "ShardWriter", "TarTruncatedError",
    "TarUnreadableError", "ValidationReport", "build_manifest", "check_sample", "decode_sample", "iter_samples",
    "next_shard_index", "read_index", "read_manifest", "resolve_shard_paths", "validate_paths", "write_manifest",
]
