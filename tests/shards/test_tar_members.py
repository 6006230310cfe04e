"""The shard reader and `validate` put every tar member to the member policy first: a link, a sparse member
or one over its cap is reported (validate) or refused (iter_samples), never read."""

from __future__ import annotations

import tracemalloc

import pytest
from typer.testing import CliRunner

from got_data.cli import app
from got_data.errors import ShardError
from got_data.shards import iter_samples, validate_paths
from got_data.shards.tar_policy import DEFAULT_POLICY
from tests.hostile_tars import MIB, regular, sparse, symlink, write_tar


@pytest.fixture
def sample(valid_samples):
    record, images = valid_samples["t2i"][0]
    return record.key, record.model_dump_json().encode(), images["jpg"]


def test_a_sparse_image_member_is_reported_and_never_expanded(tmp_path, sample):
    key, record_json, _ = sample
    shard = write_tar(tmp_path / "got-000000.tar", regular(f"{key}.json", record_json), sparse(f"{key}.jpg", 64 * MIB))
    tracemalloc.start()
    try:
        report = validate_paths(shard)
        with pytest.raises(ShardError, match="sparse_member"):
            list(iter_samples(shard))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"reading the shard allocated {peak} bytes"
    assert report.kinds() == {"member_refused", "missing_member", "index_mismatch"}
    refused = next(i for i in report.issues if i.kind == "member_refused")
    assert refused.key == key and "expands to 67108864 bytes" in refused.reason


def test_a_link_member_is_reported_by_validate_and_refused_by_the_reader(tmp_path, sample):
    key, record_json, _ = sample
    shard = write_tar(tmp_path / "got-000000.tar", regular(f"{key}.json", record_json), symlink(f"{key}.jpg", "/etc/hostname"))
    report = validate_paths(shard)
    assert "member_refused" in report.kinds()
    assert any(i.reason.startswith(f"link_member: {key}.jpg is a symbolic link") for i in report.issues)
    with pytest.raises(ShardError, match="link_member"):
        list(iter_samples(shard))


def test_member_caps_are_an_argument_of_the_reader_and_an_option_of_validate(tmp_path, sample):
    key, record_json, jpg = sample
    shard = write_tar(tmp_path / "got-000000.tar", regular(f"{key}.json", record_json), regular(f"{key}.jpg", jpg))
    [read] = iter_samples(shard)
    assert read.images["jpg"] == jpg
    tight = DEFAULT_POLICY.with_caps({"jpg": len(jpg) - 1})
    with pytest.raises(ShardError, match="oversized_member"):
        list(iter_samples(shard, member_policy=tight))
    assert "member_refused" in validate_paths(shard, member_policy=tight).kinds()
    result = CliRunner().invoke(app, ["validate", str(shard), "--max-member-bytes", f"jpg={len(jpg) - 1}"])
    assert result.exit_code == 1 and "member_refused" in result.output
    result = CliRunner().invoke(app, ["validate", str(shard), "--max-member-bytes", "jpg"])
    assert result.exit_code == 2 and "EXT=SIZE" in result.output

