"""The training loader reads shards through the same tar member policy as ingest and the shard reader: a
sparse member, a link or a member over its cap is refused without being read (training streams,
validation and evaluation sets), and the caps are the config's `data.max_member_bytes`."""

from __future__ import annotations

import itertools
import random
import tracemalloc

import pytest

from got_data.errors import ShardError, SpecError
from got_data.train.config import config_from_dict
from got_data.train.data import held_out_samples, source_stream
from tests.hostile_tars import MIB, regular, sparse, symlink, write_tar
from tests.train.conftest import make_t2i, tiny_config_dict


def _members(i: int) -> tuple[str, bytes, bytes]:
    record, images = make_t2i(i, random.Random(i))
    return record.key, record.model_dump_json().encode(), images["jpg"]


def _keys(stream, count: int) -> list[str]:
    return [drawn.sample.key for drawn in itertools.islice(stream, count)]


def test_a_sparse_member_stops_or_is_skipped_and_is_never_expanded(tmp_path):
    good_key, good_json, good_jpg = _members(0)
    bad_key, bad_json, _ = _members(1)
    shard = write_tar(tmp_path / "got-000000.tar", regular(f"{good_key}.json", good_json),
                      regular(f"{good_key}.jpg", good_jpg), regular(f"{bad_key}.json", bad_json),
                      sparse(f"{bad_key}.jpg", 64 * MIB))
    tracemalloc.start()
    try:
        with pytest.raises(ShardError, match="sparse_member"):
            _keys(source_stream([shard], 0, 0, 1, skip_bad=False), 2)
        with pytest.raises(ShardError, match="sparse_member"):
            held_out_samples([str(shard)], 2, "validation")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"reading the shard allocated {peak} bytes"
    assert set(_keys(source_stream([shard], 0, 0, 1, skip_bad=True), 3)) == {good_key}


def test_a_link_member_is_refused(tmp_path):
    key, record_json, _ = _members(0)
    shard = write_tar(tmp_path / "got-000000.tar", regular(f"{key}.json", record_json), symlink(f"{key}.jpg", "/etc/hostname"))
    with pytest.raises(ShardError, match="link_member"):
        _keys(source_stream([shard], 0, 0, 1, skip_bad=False), 1)


def test_the_caps_are_the_configs_max_member_bytes(tmp_path, tiny_shards):
    key, record_json, jpg = _members(0)
    shard = write_tar(tmp_path / "got-000000.tar", regular(f"{key}.json", record_json), regular(f"{key}.jpg", jpg))
    config = tiny_config_dict(tiny_shards, tmp_path / "run")
    assert _keys(source_stream([shard], 0, 0, 1, False, config_from_dict(config).data.member_policy()), 1) == [key]
    config["data"]["max_member_bytes"] = [f"jpg={len(jpg) - 1}"]
    tight = config_from_dict(config).data.member_policy()
    with pytest.raises(ShardError, match="oversized_member"):
        _keys(source_stream([shard], 0, 0, 1, False, tight), 1)
    with pytest.raises(ShardError, match="oversized_member"):
        held_out_samples([str(shard)], 1, "evaluation", tight)
    config["data"]["max_member_bytes"] = ["jpg=lots"]
    with pytest.raises(SpecError, match="max_member_bytes"):
        config_from_dict(config)
