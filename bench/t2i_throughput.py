"""T2I pipeline throughput and memory, with the tiny models on this machine. Prints figures.

    .venv/bin/python bench/t2i_throughput.py [--n 24] [--memory-n 8] [--config pipelines/t2i-tiny.yaml]

1. The pipeline end to end on N bundled images (records/s), recording every model request it makes.
2. The pipeline again on the same images (answer grammars now cached), then the same requests sent
   straight to the same pools, all at once, without the pipeline (requests/s);
   the ratio pipeline/direct (by wall time for the same requests) is the pipeline's overhead: target >= 0.85.
3. Prefill tokens per record, and the engines' prefix-cache and multimodal-cache hit rates: grounding
   requests should reuse the recaption request's image prefix.
4. Peak memory (RSS of the whole process tree: driver, Ray, engines) of the CLI job at M and 10xM small
   generated images, each in its own process: it must not grow with the input.
"""

from __future__ import annotations

import argparse
import asyncio
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


def throughput(args) -> None:
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
    try:
        images = work / "images"
        copy_images(images, args.n)
        # Warm-up run (compiles grammars, fills nothing we measure later: separate images folder).
        copy_images(work / "warm", 4)
        PipelineRun(spec, open_source(str(work / "warm")), pools, RunOptions(out_dir=work / "warm-out", show_progress=False, console=quiet)).run()
        before = {role: pool.stats()["engine"] for role, pool in pools.items()}
        recording = {role: RecordingPool(pool) for role, pool in pools.items()}
        run = PipelineRun(spec, open_source(str(images)), recording,
                          RunOptions(out_dir=work / "out", show_progress=False, console=quiet))
        start = time.perf_counter()
        stats = run.run()
        pipeline_s = time.perf_counter() - start
        vlm_stats = pools["vlm"].stats()
        requests = [(role, r) for role, rec in recording.items() for r in rec.requests]
        # The same inputs again into a fresh folder: same answers, so every answer grammar is now in
        # xgrammar's cache; the difference to the first run is what compiling them cost.
        again = PipelineRun(spec, open_source(str(images)), pools,
                            RunOptions(out_dir=work / "out-again", show_progress=False, console=quiet))
        start = time.perf_counter()
        again.run()
        warm_s = time.perf_counter() - start

        async def direct():
            await asyncio.gather(*(pools[role].generate(r) for role, r in requests))

        start = time.perf_counter()
        asyncio.run(direct())
        direct_s = time.perf_counter() - start
        records = stats["run"]["records"]
        prompt_tokens = sum(rec.prompt_tokens for rec in recording.values())
        print(f"inputs {args.n}, records {records}, rejects {stats['run']['rejects']}, model requests {len(requests)}")
        print(f"{'path':<28}{'seconds':>10}{'requests/s':>12}{'records/s':>11}")
        print(f"{'pipeline end to end':<28}{pipeline_s:>10.2f}{len(requests) / pipeline_s:>12.1f}{records / pipeline_s:>11.2f}")
        print(f"{'pipeline, grammars cached':<28}{warm_s:>10.2f}{len(requests) / warm_s:>12.1f}{records / warm_s:>11.2f}")
        print(f"{'same requests, pools only':<28}{direct_s:>10.2f}{len(requests) / direct_s:>12.1f}{'':>11}")
        print(f"ratio pipeline/direct (direct time / pipeline time): {direct_s / pipeline_s:.3f}  (target >= 0.85)")
        print(f"prefill tokens per input: {prompt_tokens / args.n:.1f}"
              + (f", per record: {prompt_tokens / records:.1f}" if records else ""))
        delta = {k: vlm_stats["engine"].get(k, 0) - before["vlm"].get(k, 0) for k in vlm_stats["engine"]}
        print(f"vlm engine caches during the pipeline run: {cache_rates({'engine': delta})}")
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
