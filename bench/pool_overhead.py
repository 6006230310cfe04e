"""Pool overhead: the same image requests through a bare vLLM engine, a one-actor ModelPool, and
`ray.data.llm`, each in its own process (one engine at a time). Prints a table; target b/a >= 0.90.

    .venv/bin/python bench/pool_overhead.py [--requests 512] [--images 128] [--max-tokens 16]

Throughput is measured after each engine is up and warmed with a small batch, except for
`ray.data.llm`, whose engine starts inside the timed pipeline (it has no separate start step);
its row shows the time with start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 16
QUESTIONS = ("Describe the image.", "List the objects.", "Where is the largest object?", "What colors dominate?")
WARMUP = 32


def images(n: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
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


def run_bare(args) -> dict:
    from vllm import LLM, SamplingParams

    from got_data.engines.actor import engine_args_for
    from got_data.engines.prompting import PromptBuilder

    cfg = config(args.model)
    llm = LLM(**engine_args_for(cfg))
    builder = PromptBuilder.from_pretrained(cfg.model, cfg.family)
    pics = images(args.images)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0)

    def prompts(pairs):  # built inside the timed region: the pool builds its prompts too
        return [{"prompt_token_ids": builder.build(messages(q), 1).token_ids, "multi_modal_data": {"image": pics[i]}}
                for i, q in pairs]

    llm.generate(prompts(workload(args)[:WARMUP]), params, use_tqdm=False)
    start = time.perf_counter()
    outputs = llm.generate(prompts(workload(args)), params, use_tqdm=False)
    seconds = time.perf_counter() - start
    return {"requests": len(outputs), "seconds": seconds, "tokens": sum(len(o.outputs[0].token_ids) for o in outputs)}


def run_pool(args) -> dict:
    import asyncio

    import ray

    from got_data.engines.pool import ModelPool
    from got_data.engines.types import ModelRequest

    ray.init(num_cpus=2, object_store_memory=500 * 1024**2, include_dashboard=False, log_to_driver=False)
    pool = ModelPool.start(config(args.model))
    refs = [ray.put(img) for img in images(args.images)]  # put once, reused by every request
    requests = [ModelRequest(id=str(n), messages=messages(q), images=[refs[i]], max_tokens=args.max_tokens)
                for n, (i, q) in enumerate(workload(args))]

    async def drive(batch):
        return await asyncio.gather(*(pool.generate(r) for r in batch))

    asyncio.run(drive(requests[:WARMUP]))
    start = time.perf_counter()
    responses = asyncio.run(drive(requests))
    seconds = time.perf_counter() - start
    failed = [r.error for r in responses if not r.ok]
    pool.shutdown()
    ray.shutdown()
    return {"requests": len(responses) - len(failed), "seconds": seconds,
            "tokens": sum(r.output_tokens for r in responses), "failed": len(failed)}


def run_ray_data(args) -> dict:
    """Ray's own vLLM batch processor on the same token prompts and images. Its multimodal-prepare
    stage cannot import with vLLM 0.32 (`vllm.entrypoints.chat_utils` moved), so rows carry the token
    ids our PromptBuilder makes (as in (a)) and the image itself, straight to its engine stage."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from got_data.engines.actor import engine_args_for
    from got_data.engines.prompting import PromptBuilder

    ray.init(num_cpus=4, object_store_memory=500 * 1024**2, include_dashboard=False, log_to_driver=False)
    cfg = config(args.model)
    engine_kwargs = engine_args_for(cfg)
    engine_kwargs.pop("model")
    engine_kwargs.pop("structured_outputs_config")
    builder = PromptBuilder.from_pretrained(cfg.model, cfg.family)
    pics = images(args.images)
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
    return {"requests": len(out), "seconds": seconds, "tokens": sum(r["tokens"] for r in out),
            "note": "includes engine start"}


VARIANTS = {"bare": run_bare, "pool": run_pool, "ray_data": run_ray_data}
LABELS = {"bare": "(a) bare vllm.LLM.generate", "pool": "(b) ModelPool, 1 actor, asyncio gather",
          "ray_data": "(c) ray.data.llm processor"}


def child(args) -> None:
    result = VARIANTS[args.variant](args)
    print("RESULT " + json.dumps(result), flush=True)


def parent(args) -> None:
    from got_data.engines.tiny import ensure_tiny_models

    if args.model is None:
        args.model = str(ensure_tiny_models().vlm)
    results: dict[str, dict] = {}
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", variant, "--model", args.model, "--requests",
               str(args.requests), "--images", str(args.images), "--max-tokens", str(args.max_tokens)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode == 0 and line:
            results[variant] = json.loads(line[len("RESULT "):])
        else:
            errors = [ln.strip() for ln in proc.stderr.splitlines() if "Error:" in ln or "Exception:" in ln]
            results[variant] = {"error": (errors[-1] if errors else f"exit {proc.returncode}")[:300]}
    print(f"pool overhead: {args.requests} image requests ({args.images} images x {len(QUESTIONS)} questions), "
          f"max_tokens={args.max_tokens}, tiny Qwen2-VL, vLLM CPU")
    print(f"{'variant':42} {'requests/s':>11} {'seconds':>8} {'out tokens':>10}")
    for variant, result in results.items():
        if "error" in result:
            print(f"{LABELS[variant]:42} {'n/a':>11}  could not run: {result['error']}")
            continue
        rate = result["requests"] / result["seconds"]
        note = f"  ({result['note']})" if "note" in result else ""
        print(f"{LABELS[variant]:42} {rate:11.1f} {result['seconds']:8.2f} {result['tokens']:10d}{note}")
    if "error" not in results["bare"] and "error" not in results["pool"]:
        ratio = (results["pool"]["requests"] / results["pool"]["seconds"]) / (
            results["bare"]["requests"] / results["bare"]["seconds"])
        print(f"ratio b/a: {ratio:.3f} (target >= 0.90)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--model", default=None, help="VLM folder (default: the tiny Qwen2-VL)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.variant else parent(args)


if __name__ == "__main__":
    main()
