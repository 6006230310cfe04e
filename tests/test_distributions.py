"""Histograms and tallies a run merges per shard: percentiles within a bucket, merging = adding, JSON round trip;
DatasetStats counted from the committed sample shards' records."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from got_data.annotate.stats import DatasetStats
from got_data.distributions import BASE, Histogram, Tally
from got_data.records import EditRecord, T2IRecord
from got_data.shards.reader import iter_samples

SHARDS = Path(__file__).resolve().parent / "data" / "shards"


def _exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(-(-q / 100 * len(ordered) // 1)) - 1)]


def test_percentiles_are_within_one_bucket_of_the_exact_ones():
    rng = random.Random(3)
    values = [rng.lognormvariate(0, 1.5) for _ in range(5000)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    for q in (50, 90, 99):
        exact = _exact_percentile(values, q)
        assert exact / BASE <= histogram.percentile(q) <= exact * BASE, q
    assert histogram.percentile(100) <= max(values) and histogram.low == min(values)
    assert histogram.mean == pytest.approx(sum(values) / len(values))


def test_merging_is_adding_and_json_round_trips():
    rng = random.Random(4)
    values = [rng.uniform(0, 50) for _ in range(300)] + [0.0, 0.0]
    whole, first, second = Histogram(), Histogram(), Histogram()
    for n, value in enumerate(values):
        whole.add(value)
        (first if n % 3 else second).add(value)
    first.merge(Histogram.from_dict(second.to_dict()))
    merged, expected = first.to_dict(), whole.to_dict()
    assert merged.pop("total") == pytest.approx(expected.pop("total"))  # float sums differ in the last bit
    assert merged == expected
    assert first.zeros == 2 and whole.percentile(0.1) == 0.0
    with pytest.raises(ValueError):
        whole.add(-1.0)


def test_a_tally_is_exact_and_orders_numbers_numerically():
    tally = Tally()
    for value in (10, 2, 2, 1):
        tally.add(value)
    assert tally.items() == [("1", 1), ("2", 2), ("10", 1)] and tally.mean() == pytest.approx(15 / 4)
    names = Tally.from_dict({"values": {"add": 1, "style": 3}})
    assert names.items() == [("style", 3), ("add", 1)] and names.mean() is None


@pytest.mark.parametrize("kind", ["t2i", "edit", "multiturn"])
def test_dataset_stats_of_the_sample_shards(kind):
    records = [sample.record for sample in iter_samples(SHARDS / kind)]
    stats = DatasetStats()
    for record in records:
        stats.add_record(record)
    again = DatasetStats.from_dict(stats.to_dict())
    assert again.to_dict() == stats.to_dict()
    assert stats.records == len(records) and stats.tallies["kinds"].counts == {kind: len(records)}
    assert stats.histograms["got_chars"].total == sum(len(r.got) for r in records)
    if isinstance(records[0], T2IRecord):
        boxes = sum(len(obj.boxes) for r in records for obj in r.objects)
        assert stats.histograms["prompt_chars"].total == sum(len(r.prompt) for r in records)
    else:
        ops = [op for r in records for op in ([r.edit] if isinstance(r, EditRecord) else r.steps)]
        boxes = sum(len(op.regions) for op in ops)
        assert stats.tallies["edit_types"].count == len(ops)
    assert stats.histograms["box_area"].count == boxes
    assert 0 < stats.histograms["box_area"].high <= 1
