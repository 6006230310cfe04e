"""Webdataset shards of GoT records: writing (crash-safe, reproducible), reading, indexes, manifests, validation."""

from got_data.shards.dataset_card import write_dataset_card
from got_data.shards.index import IndexRow, MemberEntry, SampleRow, read_index, read_sample_index
from got_data.shards.layout import next_shard_index, resolve_shard_paths
from got_data.shards.manifest import build_manifest, read_manifest, write_manifest
from got_data.shards.reader import ShardSample, decode_sample, iter_samples
from got_data.shards.tar_stream import TarTruncatedError, TarUnreadableError
from got_data.shards.validate import ERROR_KINDS, Issue, ValidationReport, validate_paths
from got_data.shards.wids_index import write_wids_index
from got_data.shards.writer import ShardInfo, ShardWriter, check_sample

__all__ = [
    "ERROR_KINDS", "IndexRow", "Issue", "MemberEntry", "SampleRow", "ShardInfo", "ShardSample", "ShardWriter",
    "TarTruncatedError", "TarUnreadableError", "ValidationReport", "build_manifest", "check_sample", "decode_sample",
    "iter_samples", "next_shard_index", "read_index", "read_manifest", "read_sample_index", "resolve_shard_paths",
    "validate_paths", "write_dataset_card", "write_manifest", "write_wids_index",
]
