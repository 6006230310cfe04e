"""The training stream: GoT shards through webdataset, mixed, shuffled, batched in workers, resumable.

Why the shape: exact resume needs the stream to be a pure function of (seed, worker, position). Each
DataLoader worker therefore owns a seeded, endless stream per source (shards shuffled per epoch and
split between workers), mixes the sources with seeded weighted draws, shuffles through a seeded buffer
and batches. The DataLoader hands out batch i from worker i % workers, so after K batches each worker's
share is known: resuming rotates the workers' roles so the one whose turn is next answers first, each
skips exactly its share of raw samples (before any image decoding), and the next batch equals the one
the uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from functools import partial

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from got_data.errors import InputError, ShardError
from got_data.shards.layout import resolve_shard_paths
from got_data.shards.reader import ShardSample, decode_sample
from got_data.train.config import DataSettings
from got_data.train.examples import TrainingExample, build_example, collate
from got_data.train.prompting import ChatEncoder

log = logging.getLogger(__name__)


def worker_share(batches_done: int, worker: int, workers: int) -> int:
    """How many of the first `batches_done` batches came from `worker` (round-robin order)."""
    return 0 if batches_done <= worker else (batches_done - worker + workers - 1) // workers


def _epoch_shards(shards: list[str], seed: int, epoch: int, worker: int, workers: int) -> list[str]:
    order = list(shards)
    random.Random(f"{seed}:{epoch}").shuffle(order)
    if len(order) >= workers:
        return order[worker::workers]
    # Fewer shards than workers: each worker reads one whole shard per epoch, rotating.
    return [order[(worker + epoch) % len(order)]]


def source_stream(shards: list[str], seed: int, worker: int, workers: int, skip_bad: bool) -> Iterator[ShardSample]:
    """Endless ShardSamples of one source for one worker: epoch after epoch of shuffled shards."""
    handler = wds.warn_and_continue if skip_bad else wds.reraise_exception
    epoch = 0
    while True:
        urls = _epoch_shards(shards, seed, epoch, worker, workers)
        pipeline = wds.WebDataset(
            urls, shardshuffle=False, nodesplitter=None, workersplitter=None, handler=handler, empty_check=False
        ).map(decode_sample, handler=handler)
        produced = 0
        for sample in pipeline:
            produced += 1
            yield sample
        if produced == 0:
            raise InputError(f"shards {urls} produced no sample")
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


class ShardBatches(IterableDataset):
    """Collated training batches from mixed GoT shard sources; starts after `batches_done` batches."""

    def __init__(
        self,
        settings: DataSettings,
        make_example: Callable[[ShardSample], TrainingExample],
        pad_id: int,
        batch_size: int,
        seed: int,
        batches_done: int = 0,
    ) -> None:
        super().__init__()
        self.sources = []
        for source in settings.sources:
            try:
                shards = [str(p) for p in resolve_shard_paths(source.shards)]
            except ShardError as exc:
                raise InputError(f"data source {source.name!r}: {exc}") from exc
            self.sources.append((source.name, shards, source.weight))
        self.settings = settings
        self.make_example = make_example
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.seed = seed
        self.batches_done = batches_done

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        workers = info.num_workers if info is not None else 1
        # The DataLoader always asks worker 0 first, so a resumed loader's worker 0 plays the logical
        # worker whose turn is next in the uninterrupted run.
        worker = ((info.id if info is not None else 0) + self.batches_done) % workers
        streams = [
            source_stream(shards, random.Random(f"source:{self.seed}:{name}").getrandbits(32), worker, workers, self.settings.skip_bad_samples)
            for name, shards, _ in self.sources
        ]
        mixed = mix(streams, [w for _, _, w in self.sources], random.Random(f"mix:{self.seed}:{worker}"))
        samples = shuffle_buffer(mixed, self.settings.shuffle_buffer, random.Random(f"shuffle:{self.seed}:{worker}"))
        for _ in range(worker_share(self.batches_done, worker, workers) * self.batch_size):
            next(samples)
        while True:
            chunk = [next(samples) for _ in range(self.batch_size)]
            yield collate([self.make_example(s) for s in chunk], self.pad_id)


def make_loader(
    settings: DataSettings, encoder: ChatEncoder, batch_size: int, seed: int, batches_done: int = 0
) -> DataLoader:
    """A DataLoader over ShardBatches with `settings.workers` workers (0: in the main process)."""
    dataset = ShardBatches(
        settings,
        partial(build_example, encoder=encoder, resolution=settings.resolution),
        pad_id=encoder.tokenizer.pad_token_id,
        batch_size=batch_size,
        seed=seed,
        batches_done=batches_done,
    )
    # A private generator keeps DataLoader from drawing on the global RNG, which resume restores.
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=settings.workers,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=2 if settings.workers else None,
    )

