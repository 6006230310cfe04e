"""The training stream: GoT shards read with the project's tar reader, mixed, shuffled, batched, resumable.
Shards are local files or objects in a bucket (`s3://bucket/got/got-*.tar`), both read through the URI
layer (`got_data/uri.py`), never through a URL opener or a `pipe:` command.

Why the shape: exact resume needs the stream to be a pure function of (seed, stream, position). A run
has `ranks x loader workers` logical streams (one per DataLoader worker of each training worker); each
owns a seeded, endless stream per source, mixes the sources with seeded weighted draws, shuffles
through a seeded buffer and batches. Streams split a source by shard when it has at least as many
shards as there are streams, else by sample (a hash of the key), so every stream gets data either way.
The DataLoader hands out batch i from worker i % workers, so after K batches each worker's share is
known: resuming rotates the workers' roles so the one whose turn is next answers first, each skips
exactly its share of raw samples (before any image decoding), and the next batch equals the one the
uninterrupted run would have seen.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from got_data.errors import InputError, ShardError
from got_data.shards.layout import resolve_shards
from got_data.shards.reader import ShardSample, sample_from_raw
from got_data.shards.tar_policy import DEFAULT_POLICY, MemberPolicy
from got_data.shards.tar_stream import TarStream
from got_data.train.config import DataSettings
from got_data.train.examples import TrainingExample, build_example, collate
from got_data.train.prompting import ChatEncoder
from got_data.train.randomness import derived_seed
from got_data.uri import Location

log = logging.getLogger(__name__)
MAX_IDLE_EPOCHS = 64  # epochs in a row without a sample for a stream before a source counts as unusable


def worker_share(batches_done: int, worker: int, workers: int) -> int:
    """How many of the first `batches_done` batches came from `worker` (round-robin order)."""
    return 0 if batches_done <= worker else (batches_done - worker + workers - 1) // workers


@dataclass(frozen=True)
class EpochPlan:
    """What one stream reads in one epoch: these shards, and of them only its keys when `by_key`."""

    shards: list[Path | Location]
    by_key: bool


def epoch_plan(shards: list[Path | Location], seed: int, epoch: int, stream: int, streams: int) -> EpochPlan:
    """Shards shuffled per epoch; split by shard when there are enough, else read by all, split by key."""
    order = list(shards)
    random.Random(f"{seed}:{epoch}").shuffle(order)
    if len(order) >= streams:
        return EpochPlan(order[stream::streams], by_key=False)
    return EpochPlan(order, by_key=True)


def key_stream(key: str, epoch: int, streams: int) -> int:
    """The stream a sample belongs to in an epoch when a source is split by key (re-drawn every epoch,
    so a source with fewer samples than streams still reaches every stream over a few epochs)."""
    return derived_seed("split", epoch, key) % streams


@dataclass(frozen=True)
class Drawn:
    """A sample and the epoch of its source stream it was read in (per-visit choices use both)."""

    sample: ShardSample
    epoch: int


class _Reader:
    """Reads one stream's samples of a shard through the project's own tar reader (no URL, no shell);
    counts every sample it saw, its stream's or not, so an empty source is told from an unlucky split."""

    def __init__(self, stream: int, streams: int, skip_bad: bool, member_policy: MemberPolicy) -> None:
        self.stream, self.streams, self.skip_bad = stream, streams, skip_bad
        self.member_policy = member_policy
        self.seen = 0

    def samples(self, path: Path | Location, epoch: int, by_key: bool) -> Iterator[ShardSample]:
        try:
            for raw in TarStream(path, self.member_policy).samples():
                self.seen += 1
                if by_key and key_stream(raw.key, epoch, self.streams) != self.stream:
                    continue  # another stream's sample: passed over before its record is parsed
                try:
                    yield sample_from_raw(raw, str(path))
                except ShardError as exc:
                    if not self.skip_bad:
                        raise
                    log.warning("skipping a bad sample: %s", exc)
        except ShardError as exc:
            if not self.skip_bad:
                raise
            log.warning("skipping the rest of a bad shard: %s", exc)


def source_stream(shards: list[Path | Location], seed: int, stream: int, streams: int, skip_bad: bool,
                  member_policy: MemberPolicy = DEFAULT_POLICY) -> Iterator[Drawn]:
    """Endless samples of one source for one stream: epoch after epoch of shuffled shards, each tar
    member within `member_policy`'s caps."""
    reader = _Reader(stream, streams, skip_bad, member_policy)
    epoch, idle_epochs = 0, 0
    while True:
        plan = epoch_plan(shards, seed, epoch, stream, streams)
        idle_epochs += 1
        for path in plan.shards:
            for sample in reader.samples(path, epoch, plan.by_key):
                idle_epochs = 0
                yield Drawn(sample, epoch)
        if reader.seen == 0:
            raise InputError(f"shards {[str(p) for p in plan.shards]} hold no readable sample")
        if idle_epochs >= MAX_IDLE_EPOCHS:
            raise InputError(f"shards {[str(p) for p in shards]} gave data stream {stream} of {streams} "
                             f"no usable sample in {MAX_IDLE_EPOCHS} epochs")
        epoch += 1


def mix(streams: list[Iterator], weights: list[float], rng: random.Random) -> Iterator:
    """Weighted interleave: each item comes from stream i with probability weights[i] / sum(weights)."""
    while True:
        yield next(streams[rng.choices(range(len(streams)), weights=weights)[0]])


def shuffle_buffer(items: Iterator, size: int, rng: random.Random) -> Iterator:
    """Reservoir-style shuffle through a buffer of `size` items (size 0 or 1: no shuffling)."""
    if size <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            i = rng.randrange(len(buffer))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()


class ExampleMaker(Protocol):
    """`build_example` with everything but the sample and its epoch bound."""

    def __call__(self, sample: ShardSample, *, epoch: int) -> TrainingExample: ...


class ShardBatches(IterableDataset):
    """Collated training batches of one rank from mixed GoT shard sources; starts after `batches_done`."""

    def __init__(
        self,
        settings: DataSettings,
        make_example: ExampleMaker,
        pad_id: int,
        batch_size: int,
        seed: int,
        batches_done: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        super().__init__()
        self.sources = []
        for source in settings.sources:
            try:
                shards = resolve_shards(source.shards)
            except ShardError as exc:
                raise InputError(f"data source {source.name!r}: {exc}") from exc
            self.sources.append((source.name, shards, source.weight))
        self.settings = settings
        self.make_example = make_example
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.seed = seed
        self.batches_done = batches_done
        self.rank = rank
        self.world = world

    @property
    def reads_a_store(self) -> bool:
        """True when a source has shards in an object store (not on a local disk)."""
        return any(isinstance(shard, Location) and shard.remote for _, shards, _ in self.sources for shard in shards)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        workers = info.num_workers if info is not None else 1
        # The DataLoader always asks worker 0 first, so a resumed loader's worker 0 plays the logical
        # worker whose turn is next in the uninterrupted run.
        worker = ((info.id if info is not None else 0) + self.batches_done) % workers
        stream, streams = self.rank * workers + worker, self.world * workers
        sources = [
            source_stream(shards, derived_seed("source", self.seed, name), stream, streams, self.settings.skip_bad_samples,
                          self.settings.member_policy())
            for name, shards, _ in self.sources
        ]
        mixed = mix(sources, [w for _, _, w in self.sources], random.Random(f"mix:{self.seed}:{stream}"))
        drawn = shuffle_buffer(mixed, self.settings.shuffle_buffer, random.Random(f"shuffle:{self.seed}:{stream}"))
        for _ in range(worker_share(self.batches_done, worker, workers) * self.batch_size):
            next(drawn)
        while True:
            chunk = [next(drawn) for _ in range(self.batch_size)]
            yield collate([self.make_example(d.sample, epoch=d.epoch) for d in chunk], self.pad_id)


def make_loader(
    settings: DataSettings, encoder: ChatEncoder, batch_size: int, seed: int, batches_done: int = 0,
    rank: int = 0, world: int = 1,
) -> DataLoader:
    """A DataLoader of one rank over ShardBatches with `settings.workers` workers (0: in the main process)."""
    dataset = ShardBatches(
        settings,
        partial(
            build_example, encoder=encoder, resolution=settings.resolution, seed=seed,
            reinstruction_probability=settings.reinstruction_probability, spatial_boxes=settings.spatial_boxes,
        ),
        pad_id=encoder.tokenizer.pad_token_id,
        batch_size=batch_size,
        seed=seed,
        batches_done=batches_done,
        rank=rank,
        world=world,
    )
    # A private generator keeps DataLoader from drawing on the global RNG. The AWS SDK under a store's
    # file system does not survive fork (a forked worker's reads fail after a minute of retries), so
    # workers reading a bucket start fresh (spawn).
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=settings.workers,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=2 if settings.workers else None,
        multiprocessing_context="spawn" if settings.workers and dataset.reads_a_store else None,
    )


def held_out_samples(shards: list[str], count: int, what: str,
                     member_policy: MemberPolicy = DEFAULT_POLICY) -> list[ShardSample]:
    """The first `count` samples of `shards` in sorted shard order: a fixed set (validation, evaluation)."""
    from got_data.shards.reader import iter_samples

    try:
        paths = resolve_shards(shards)
    except ShardError as exc:
        raise InputError(f"{what} shards: {exc}") from exc
    samples = list(itertools.islice(iter_samples(paths, member_policy), count))
    if not samples:
        raise InputError(f"{what} shards {shards} hold no sample")
    return samples


def fixed_batches(
    shards: list[str], count: int, encoder: ChatEncoder, resolution: int, batch_size: int, pad_id: int,
    member_policy: MemberPolicy = DEFAULT_POLICY,
) -> list[dict]:
    """The first `count` samples of `shards` (sorted shard order) as collated batches: a held-out set."""
    held_out = held_out_samples(shards, count, "validation", member_policy)
    examples = [build_example(s, encoder, resolution) for s in held_out]
    return [collate(examples[i : i + batch_size], pad_id) for i in range(0, len(examples), batch_size)]
