"""T2I pipeline throughput and memory, with the tiny models on this machine. Prints figures.

    .venv/bin/python bench/t2i_throughput.py [--n 24] [--memory-n 8] [--config pipelines/t2i-tiny.yaml]

1. The pipeline end to end on N bundled images (records/s), recording every model request it makes.
2. Rounds that alternate the pipeline on the same images and the same requests replayed straight to
   the same pools without the pipeline, each input's requests in its stages' order (recaption, then
   extraction, then grounding: a stage's request is built from the answer before it), all inputs at
   once. Every pass starts from empty prefix and multimodal caches. The median ratio (replay time /
   pipeline time) is the pipeline's overhead: target >= 0.85. Also printed: the same requests all at
   once, ignoring those dependencies, which no pipeline can match for one batch of inputs.
3. Prefill tokens per record, and the engines' prefix-cache and multimodal-cache hit rates: grounding
   requests should reuse the recaption request's image prefix.
4. Peak memory (RSS of the whole process tree: driver, Ray, engines) of the CLI job at M and 10xM small
   generated images, each in its own process: it must not grow with the input.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]


class RecordingPool:
    """Forwards to a pool and keeps every request, so they can be replayed straight to the pool."""

    def __init__(self, pool):
        self.pool = pool
        self.requests = []
        self.prompt_tokens = 0

    async def generate(self, request):
        self.requests.append(request)
        response = await self.pool.generate(request)
        self.prompt_tokens += response.prompt_tokens
        return response

    def model_info(self):
        return self.pool.model_info()


def copy_images(folder: Path, n: int) -> None:
    from got_data.sample_data import sample_images_dir

    folder.mkdir(parents=True)
    sources = sorted(sample_images_dir().glob("*.jpg"))
    for i in range(n):
        shutil.copy(sources[i % len(sources)], folder / f"{i:05d}.jpg")


def generated_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg")


def cache_rates(stats: dict) -> str:
    engine = stats.get("engine", {})
    parts = []
    for name in ("prefix_cache", "mm_cache"):
        queries, hits = engine.get(f"{name}_queries", 0), engine.get(f"{name}_hits", 0)
        parts.append(f"{name} {hits:.0f}/{queries:.0f} = {hits / queries:.1%}" if queries else f"{name} n/a")
    return ", ".join(parts)


def chains(requests: list) -> list[list[list]]:
    """The recorded (role, request) pairs as one chain per input: its stages in order, each stage's
    requests together (an image's grounding requests are sent at once, as the stage sends them)."""
    by_input: dict[str, list[list]] = {}
    for role, request in requests:
        groups = by_input.setdefault(request.context["input_ref"], [])
        if not groups or groups[-1][0][1].context["stage"] != request.context["stage"]:
            groups.append([])
        groups[-1].append((role, request))
    return list(by_input.values())


def throughput(args) -> None:
    import statistics

    import ray
    from rich.console import Console

    from got_data.annotate.launch import ModelChoice, init_ray, start_pools
    from got_data.annotate.runner import PipelineRun, RunOptions
    from got_data.ingest import open_source
    from got_data.spec import load_spec

    spec = load_spec(args.config)
    quiet = Console(file=open(os.devnull, "w"))
    init_ray(None, len(spec.roles()))
    pools = start_pools(spec, ModelChoice(), quiet)
    work = Path(tempfile.mkdtemp(prefix="got-bench-"))
    runs = itertools.count()

    def pipeline(pools_used) -> tuple[float, dict]:
        run = PipelineRun(spec, open_source(str(images)), pools_used,
                          RunOptions(out_dir=work / f"out-{next(runs)}", show_progress=False, console=quiet))
        start = time.perf_counter()
        stats = run.run()
        return time.perf_counter() - start, stats

    def cold() -> None:
        for pool in pools.values():
            pool.reset_caches()

    try:
        images = work / "images"
        copy_images(images, args.n)
        # Warm-up run on other images: engines, Ray workers and the stages' fixed grammars.
        copy_images(work / "warm", 4)
        PipelineRun(spec, open_source(str(work / "warm")), pools,
                    RunOptions(out_dir=work / "warm-out", show_progress=False, console=quiet)).run()
        cold()
        before = {role: pool.stats()["engine"] for role, pool in pools.items()}
        recording = {role: RecordingPool(pool) for role, pool in pools.items()}
        first_s, stats = pipeline(recording)
        vlm_stats = pools["vlm"].stats()
        requests = [(role, r) for role, rec in recording.items() for r in rec.requests]
        per_input = chains(requests)

        async def chained():
            async def chain(groups):
                for group in groups:
                    await asyncio.gather(*(pools[role].generate(r) for role, r in group))
            await asyncio.gather(*(chain(groups) for groups in per_input))

        async def all_at_once():
            await asyncio.gather(*(pools[role].generate(r) for role, r in requests))

        def timed(coro_fn) -> float:
            start = time.perf_counter()
            asyncio.run(coro_fn())
            return time.perf_counter() - start

        # Alternating rounds, every pass from cold prefix/multimodal caches; answer grammars are
        # cached for all of them (the first pass compiled them), so they compare like with like.
        rounds = []
        for r in range(args.rounds):
            row = {}
            for name in (("pipeline", "chained") if r % 2 == 0 else ("chained", "pipeline")):
                cold()
                row[name] = pipeline(pools)[0] if name == "pipeline" else timed(chained)
            cold()
            row["all_at_once"] = timed(all_at_once)
            rounds.append(row)
        records = stats["run"]["records"]
        prompt_tokens = sum(rec.prompt_tokens for rec in recording.values())
        print(f"inputs {args.n}, records {records}, rejects {stats['run']['rejects']}, "
              f"model requests {len(requests)} ({len(requests) / max(1, len(per_input)):.1f} per input)")
        print(f"first pass (cold caches, answer grammars compiled): {first_s:.2f} s, {records / first_s:.2f} records/s")
        print(f"{'round':>5}{'pipeline s':>12}{'records/s':>11}{'chained replay s':>18}{'all at once s':>15}"
              f"{'ratio':>7}")
        ratios = []
        for i, row in enumerate(rounds, 1):
            ratios.append(row["chained"] / row["pipeline"])
            print(f"{i:5d}{row['pipeline']:12.2f}{records / row['pipeline']:11.2f}{row['chained']:18.2f}"
                  f"{row['all_at_once']:15.2f}{ratios[-1]:7.3f}")
        median = {key: statistics.median(row[key] for row in rounds) for key in rounds[0]}
        print(f"{'median':>5}{median['pipeline']:12.2f}{records / median['pipeline']:11.2f}{median['chained']:18.2f}"
              f"{median['all_at_once']:15.2f}{statistics.median(ratios):7.3f}")
        print(f"ratio pipeline/direct (chained replay time / pipeline time), median: {statistics.median(ratios):.3f}"
              f"  (target >= 0.85)")
        print(f"against all requests at once, ignoring that each stage needs the one before: "
              f"{median['all_at_once'] / median['pipeline']:.3f}")
        print(f"prefill tokens per input: {prompt_tokens / args.n:.1f}"
              + (f", per record: {prompt_tokens / records:.1f}" if records else ""))
        delta = {k: vlm_stats["engine"].get(k, 0) - before["vlm"].get(k, 0) for k in vlm_stats["engine"]}
        print(f"vlm engine caches during the first pass: {cache_rates({'engine': delta})}")
    finally:
        for pool in pools.values():
            pool.shutdown()
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def peak_memory(n: int, config: str) -> tuple[float, float]:
    """(peak tree RSS GiB, seconds) of `got-data annotate t2i` over n generated images."""
    work = Path(tempfile.mkdtemp(prefix="got-bench-mem-"))
    try:
        generated_images(work / "images", n)
        cmd = [sys.executable, "-m", "got_data", "annotate", "t2i", str(work / "images"), "--out", str(work / "out"),
               "--config", config, "--samples-per-shard", "50"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.25)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        rc = proc.wait()
        done.set()
        thread.join()
        if rc != 0:
            raise SystemExit(f"annotate exited {rc} on {n} images")
        return peak / 1024**3, time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24, help="bundled images for the throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed passes of pipeline and replay")
    parser.add_argument("--memory-n", type=int, default=8, help="M: memory runs use M and 10*M images (0 skips)")
    parser.add_argument("--config", default=str(ROOT / "pipelines" / "t2i-tiny.yaml"))
    args = parser.parse_args()
    throughput(args)
    if args.memory_n:
        small = peak_memory(args.memory_n, args.config)
        large = peak_memory(10 * args.memory_n, args.config)
        print(f"{'images':>8}{'peak RSS GiB':>14}{'seconds':>10}")
        print(f"{args.memory_n:>8}{small[0]:>14.2f}{small[1]:>10.1f}")
        print(f"{10 * args.memory_n:>8}{large[0]:>14.2f}{large[1]:>10.1f}")
        print(f"peak memory ratio 10x/1x input: {large[0] / small[0]:.3f} (flat means ~1.0)")


if __name__ == "__main__":
    main()
