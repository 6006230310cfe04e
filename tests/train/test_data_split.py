"""How the data streams of a distributed run split a source: disjoint, complete, every stream fed."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from got_data.errors import InputError
from got_data.shards.layout import resolve_shard_paths
from got_data.shards.reader import iter_samples
from got_data.train.data import epoch_plan, source_stream


def _first_epoch(shards, stream: int, streams: int) -> list[str]:
    drawn = source_stream(shards, seed=3, stream=stream, streams=streams, skip_bad=False)
    return [d.sample.key for d in itertools.takewhile(lambda d: d.epoch == 0, drawn)]


@pytest.mark.parametrize("streams", [2, 3, 4])
def test_streams_read_disjoint_parts_that_cover_the_source(tiny_shards, streams):
    shards = resolve_shard_paths(tiny_shards["t2i"])  # 2 shards: by shard for 2 streams, by key beyond
    every = sorted(s.key for s in iter_samples(shards))
    parts = [_first_epoch(shards, s, streams) for s in range(streams)]
    assert sorted(k for part in parts for k in part) == every
    assert epoch_plan(shards, 3, 0, 0, streams).by_key == (streams > len(shards))


def test_one_shard_feeds_every_stream(tiny_shards):
    shard = resolve_shard_paths(tiny_shards["edit"])[:1]  # 6 samples in one shard
    for stream in range(4):
        drawn = source_stream(shard, seed=0, stream=stream, streams=4, skip_bad=False)
        keys = [d.sample.key for d in itertools.islice(drawn, 12)]
        assert len(keys) == 12
    # over many epochs each sample is read about equally often by a stream
    drawn = source_stream(shard, seed=0, stream=1, streams=4, skip_bad=False)
    counts = Counter(d.sample.key for d in itertools.islice(drawn, 600))
    assert len(counts) == 6 and min(counts.values()) > 60


def test_an_empty_source_is_an_error(tmp_path):
    empty = tmp_path / "got-000000.tar"
    import tarfile

    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(InputError, match="no readable sample"):
        next(source_stream([empty], seed=0, stream=0, streams=2, skip_bad=False))
