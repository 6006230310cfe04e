"""Pool overhead: the same image requests through (a) a bare vLLM engine and (b) a one-actor
ModelPool, alternated round by round in one process, and (c) `ray.data.llm` in a process of its own.
Prints a table; target: median b/a >= 0.90.

    .venv/bin/python bench/pool_overhead.py [--requests 512] [--images 128] [--rounds 5] [--max-tokens 16]

Why rounds: on a shared 2-core machine one timed pass of a second or two swings by 2x, so (a) and
(b) run alternately (a b, b a, a b, ...) and the ratio is taken per round and as a median. Each
round draws new images, so neither engine answers from a cache the other lacked, and each pass waits
for the other engine's idle spin to end. Throughput is
measured after both engines are up and warmed, except for `ray.data.llm`, whose engine starts
inside the timed pipeline (it has no separate start step); its row includes start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 16
QUESTIONS = ("Describe the image.", "List the objects.", "Where is the largest object?", "What colors dominate?")
WARMUP = 32
# vLLM's engine processes spin (sched_yield) for 1 s after their last step before they sleep; a pass
# started sooner shares both cores with the other engine's spin, which slows whichever runs second.
IDLE_GAP = 1.5


def images(n: int, seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)) for _ in range(n)]


def messages(question: str) -> list:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def config(model: str):
    from got_data.engines.config import PoolConfig

    return PoolConfig(role="vlm", model=model, max_model_len=1024, min_pixels=MIN_PIXELS,
                      max_pixels=MAX_PIXELS, max_in_flight_per_actor=512).resolved()


def workload(args) -> list[tuple[int, str]]:
    """(image index, question) pairs: each image asked every question, as stages would."""
    return [(i % args.images, QUESTIONS[(i // args.images) % len(QUESTIONS)]) for i in range(args.requests)]


class Bare:
    """(a) `vllm.LLM.generate` in this process; prompts are built inside the timed region, as the
    pool builds its own."""

    def __init__(self, cfg, max_tokens: int) -> None:
        from vllm import LLM, SamplingParams

        from got_data.engines.actor import engine_args_for
        from got_data.engines.prompting import PromptBuilder

        self.llm = LLM(**engine_args_for(cfg))
        self.builder = PromptBuilder.from_pretrained(cfg.model, cfg.family)
        self.params = SamplingParams(max_tokens=max_tokens, temperature=0.0)

    def prepare(self, pics: list) -> list:
        return pics

    def run(self, pics: list, pairs: list[tuple[int, str]]) -> int:
        prompts = [{"prompt_token_ids": self.builder.build(messages(q), 1).token_ids,
                    "multi_modal_data": {"image": pics[i]}} for i, q in pairs]
        outputs = self.llm.generate(prompts, self.params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs)


class Pooled:
    """(b) a one-actor `ModelPool`, driven as stages drive it: images in the object store (where
    the pipeline's decode tasks leave them), one awaited `generate` per request, all gathered."""

    def __init__(self, cfg, max_tokens: int) -> None:
        from got_data.engines.pool import ModelPool

        self.pool = ModelPool.start(cfg)
        self.max_tokens = max_tokens

    def prepare(self, pics: list) -> list:
        import ray

        return [ray.put(img) for img in pics]

    def run(self, refs: list, pairs: list[tuple[int, str]]) -> int:
        from got_data.engines.types import ModelRequest

        requests = [ModelRequest(id=str(n), messages=messages(q), images=[refs[i]], max_tokens=self.max_tokens)
                    for n, (i, q) in enumerate(pairs)]

        async def drive():
            return await asyncio.gather(*(self.pool.generate(r) for r in requests))

        responses = asyncio.run(drive())
        failed = [r.error for r in responses if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} pool requests failed, first: {failed[0]}")
        return sum(r.output_tokens for r in responses)


def run_alternating(args) -> dict:
    import ray

    from got_data.local_ray import start_local_ray

    cfg = config(args.model)
    start_local_ray(2, 500 * 1024**2)
    runners = {"bare": Bare(cfg, args.max_tokens), "pool": Pooled(cfg, args.max_tokens)}
    pairs = workload(args)
    for runner in runners.values():
        runner.run(runner.prepare(images(args.images, seed=0)), pairs[:WARMUP])
    rounds = []
    for r in range(args.rounds):
        pics = images(args.images, seed=r + 1)
        order = ("bare", "pool") if r % 2 == 0 else ("pool", "bare")
        row = {"order": "".join("ab"[name == "pool"] for name in order)}
        for name in order:
            inputs = runners[name].prepare(pics)
            time.sleep(IDLE_GAP)
            start = time.perf_counter()
            row[f"{name}_tokens"] = runners[name].run(inputs, pairs)
            row[name] = time.perf_counter() - start
        rounds.append(row)
    runners["pool"].pool.shutdown()
    ray.shutdown()
    return {"requests": len(pairs), "rounds": rounds}


def run_ray_data(args) -> dict:
    """Ray's own vLLM batch processor on the same token prompts and images. Its multimodal-prepare
    stage cannot import with vLLM 0.32 (`vllm.entrypoints.chat_utils` moved), so rows carry the token
    ids our PromptBuilder makes (as in (a)) and the image itself, straight to its engine stage."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from got_data.engines.actor import engine_args_for
    from got_data.engines.prompting import PromptBuilder
    from got_data.local_ray import start_local_ray

    start_local_ray(4, 500 * 1024**2)
    cfg = config(args.model)
    engine_kwargs = engine_args_for(cfg)
    engine_kwargs.pop("model")
    engine_kwargs.pop("structured_outputs_config")
    builder = PromptBuilder.from_pretrained(cfg.model, cfg.family)
    pics = images(args.images, seed=1)
    processor = build_processor(
        vLLMEngineProcessorConfig(
            model_source=args.model, engine_kwargs=engine_kwargs, batch_size=64, concurrency=1,
            log_engine_metrics=False, placement_group_config={"bundles": [{"CPU": 1}]},
            prepare_multimodal_stage={"enabled": False}, chat_template_stage={"enabled": False},
            tokenize_stage={"enabled": False}, detokenize_stage={"enabled": True},
        ),
        preprocess=lambda row: dict(
            tokenized_prompt=builder.build(messages(row["question"]), 1).token_ids,
            multimodal_data={"image": pics[row["image"]]},
            sampling_params={"max_tokens": args.max_tokens, "temperature": 0.0},
        ),
        postprocess=lambda row: {"text": row["generated_text"], "tokens": len(row["generated_tokens"])},
    )
    rows = [{"image": i, "question": q} for i, q in workload(args)]
    start = time.perf_counter()
    out = processor(ray.data.from_items(rows)).take_all()
    seconds = time.perf_counter() - start
    ray.shutdown()
    return {"requests": len(out), "seconds": seconds, "tokens": sum(r["tokens"] for r in out)}


VARIANTS = {"alternating": run_alternating, "ray_data": run_ray_data}


def child(args) -> None:
    result = VARIANTS[args.variant](args)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(args, variant: str) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--model", args.model, "--requests", str(args.requests),
           "--images", str(args.images), "--rounds", str(args.rounds), "--max-tokens", str(args.max_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode == 0 and line:
        return json.loads(line[len("RESULT "):])
    errors = [ln.strip() for ln in proc.stderr.splitlines() if "Error:" in ln or "Exception:" in ln]
    return {"error": (errors[-1] if errors else f"exit {proc.returncode}")[:300]}


def report(args, alternating: dict, ray_data: dict) -> None:
    n = args.requests
    print(f"pool overhead: {n} image requests ({args.images} images x {len(QUESTIONS)} questions) per pass, "
          f"max_tokens={args.max_tokens}, tiny Qwen2-VL, vLLM CPU")
    if "error" in alternating:
        print(f"(a)/(b) could not run: {alternating['error']}")
    else:
        print(f"{'round':>5} {'order':>5} {'(a) bare req/s':>15} {'(b) pool req/s':>15} {'b/a':>6}")
        ratios = []
        for i, row in enumerate(alternating["rounds"], 1):
            ratios.append(row["bare"] / row["pool"])
            print(f"{i:5d} {row['order']:>5} {n / row['bare']:15.1f} {n / row['pool']:15.1f} {ratios[-1]:6.3f}")
        bare = statistics.median(n / row["bare"] for row in alternating["rounds"])
        pool = statistics.median(n / row["pool"] for row in alternating["rounds"])
        print(f"{'median':>11} {bare:15.1f} {pool:15.1f} {statistics.median(ratios):6.3f}")
    if "error" in ray_data:
        print(f"(c) ray.data.llm processor could not run: {ray_data['error']}")
    else:
        print(f"(c) ray.data.llm processor: {ray_data['requests'] / ray_data['seconds']:.1f} req/s, "
              f"{ray_data['seconds']:.1f} s for one pass (engine start included: it has no separate start step)")
    if "error" not in alternating:
        print(f"median ratio b/a: {statistics.median(ratios):.3f} over {len(ratios)} rounds "
              f"(range {min(ratios):.3f}-{max(ratios):.3f}; target >= 0.90)")


def parent(args) -> None:
    from got_data.engines.tiny_models import ensure_tiny_models

    if args.model is None:
        args.model = str(ensure_tiny_models().vlm)
    report(args, run_child(args, "alternating"), run_child(args, "ray_data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed passes of (a) and (b)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--model", default=None, help="VLM folder (default: the tiny Qwen2-VL)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.variant else parent(args)


if __name__ == "__main__":
    main()
