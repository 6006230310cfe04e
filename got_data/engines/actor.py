"""The Ray actor that hosts one vLLM engine.

An async actor with high `max_concurrency` around vLLM's `AsyncLLM`: each `generate` call is one
coroutine, and the engine batches whatever is in flight (continuous batching), so hundreds of
requests can share one engine. Prompts are built here, next to the engine's tokenizer, so callers
send only messages and images (or ObjectRefs to images, which Ray resolves on this side).
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from dataclasses import replace
from typing import Any

import ray

from got_data.engines.config import PoolConfig
from got_data.engines.errors import PromptError
from got_data.engines.prompting import PromptBuilder
from got_data.engines.types import ImageCrop, ModelRequest
from got_data.families import family

# No grammar freedom for whitespace: a model cannot spend its budget on blanks (vLLM then has xgrammar
# separate JSON members and items with "," and ":": compact JSON, as the world oracle writes it).
DISABLE_ANY_WHITESPACE = True

AOT_COMPILE_ENV = "VLLM_USE_AOT_COMPILE"

ENGINE_METRICS = {
    "vllm:prefix_cache_queries": "prefix_cache_queries",
    "vllm:prefix_cache_hits": "prefix_cache_hits",
    "vllm:mm_cache_queries": "mm_cache_queries",
    "vllm:mm_cache_hits": "mm_cache_hits",
    "vllm:prompt_tokens": "prompt_tokens",
    "vllm:generation_tokens": "generation_tokens",
}


def engine_args_for(config: PoolConfig) -> dict[str, Any]:
    """vLLM engine arguments for a pool: prefix caching on, compact JSON grammars, fixed
    processor settings; `config.engine_kwargs` override any of them."""
    from vllm.config import StructuredOutputsConfig

    args: dict[str, Any] = dict(
        model=config.model,
        tensor_parallel_size=config.tensor_parallel_size,
        max_model_len=config.max_model_len,
        enable_prefix_caching=True,
        disable_log_stats=False,  # keeps the cache metrics that stats() reports
        seed=0,
        structured_outputs_config=StructuredOutputsConfig(backend="xgrammar",
                                                          disable_any_whitespace=DISABLE_ANY_WHITESPACE),
    )
    if family(config.family).vision:
        args["limit_mm_per_prompt"] = {"image": config.max_images_per_prompt, "video": 0}
        if config.mm_processor_kwargs():
            args["mm_processor_kwargs"] = config.mm_processor_kwargs()
    if config.tensor_parallel_size > 1:
        args["distributed_executor_backend"] = "mp"
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        # On CPU, vLLM otherwise demands that 92% of the machine's memory be free at start-up
        # (gpu_memory_utilization), which fails as soon as a second engine or job is running.
        # A fixed KV-cache size skips that check.
        args["kv_cache_memory_bytes"] = int(float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")) * 2**30)
        # A seeded request whose prompt is split over two steps (chunked prefill) has its first
        # sampled token discarded, and vLLM then rewinds the request's torch generator, which a
        # CPU generator cannot do: the engine dies ("CPU Generator does not use offset"). Whole
        # prompts per step avoid it; a prompt never exceeds max_model_len, so the budget holds one.
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = max(config.max_model_len, 2048)
    args.update(config.engine_kwargs)
    return args


def sampling_params_for(request: ModelRequest, max_tokens: int):
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    structured = None
    if request.json_schema is not None:
        structured = StructuredOutputsParams(json=request.json_schema, disable_any_whitespace=DISABLE_ANY_WHITESPACE)
    elif request.regex is not None:
        structured = StructuredOutputsParams(regex=request.regex)
    return SamplingParams(
        # Only the finished answer: streaming every step costs the async engine a Python round per
        # token per request, which dominates with small models.
        output_kind=RequestOutputKind.FINAL_ONLY,
        skip_special_tokens=request.skip_special_tokens,
        max_tokens=max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        stop=request.stop,
        structured_outputs=structured,
        logprobs=request.logprobs,
    )


def token_logprobs(completion_logprobs: Any) -> list[dict[str, float]] | None:
    """vLLM's per-token {token id: Logprob} as {token text: log-probability}; ids that decode to the
    same text have their probabilities added."""
    if completion_logprobs is None:
        return None
    out = []
    for position in completion_logprobs:
        by_text: dict[str, float] = {}
        for token_id, entry in position.items():
            text = entry.decoded_token if entry.decoded_token is not None else str(token_id)
            known = by_text.get(text)
            logprob = float(entry.logprob)
            by_text[text] = logprob if known is None else max(known, logprob) + math.log1p(math.exp(-abs(known - logprob)))
        out.append(by_text)
    return out


def _is_engine_dead(exc: BaseException) -> bool:
    return type(exc).__name__ == "EngineDeadError"


def _report_when_done(task: asyncio.Task[dict], index: int, finished: asyncio.Queue) -> None:
    """Put (index, task) on `finished` once the task is done (a function, so each task keeps its own index)."""
    task.add_done_callback(lambda done: finished.put_nowait((index, done)))


class EngineActor:
    """One vLLM engine. Wrapped with `ray.remote(...)` by the pool; `start()` must be awaited
    before `generate()`. Results are plain dicts (ModelResponse fields plus `retryable`)."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.engine: Any = None  # vllm's AsyncLLM once started
        self.builder: PromptBuilder | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0

    async def start(self) -> dict:
        from vllm import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        if current_platform.is_cpu():
            # vLLM's AOT compile cache never loads with the CPU install's torch ("'function' object has
            # no attribute 'finalize_loading'"), so every engine start compiled again: 55 s instead of
            # 37 s for a tiny model, same answers, same speed. The engine's processes inherit this.
            os.environ.setdefault(AOT_COMPILE_ENV, "0")
        self.builder = PromptBuilder.from_pretrained(self.config.model, self.config.family)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args_for(self.config)))
        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    async def generate(self, request: ModelRequest, *images: Any) -> dict:
        """Serve one request; a `length` finish under a JSON schema is retried once with twice
        the budget, then reported as a failure with reason "length"."""
        (pics,) = await self._fetch_images([request], [list(images)])  # an ImageCrop's ref is not resolved by Ray
        if isinstance(pics, dict):
            return pics
        return await self._serve(request, pics, None)

    async def generate_batch(self, requests: list[ModelRequest], images: list[list[Any]]):
        """Serve several requests in one Ray call (the pool coalesces concurrent requests to save
        per-call overhead). A streaming generator: once every chunk is started, it yields
        `[(index, result), ...]` as requests finish, so a short request is not held back by a long
        one sent in the same call.

        Like `vllm.LLM`, it fetches the batch's images once (each distinct ObjectRef once). It
        renders the prompts in chunks of `config.render_chunk` and hands each chunk to the engine
        as soon as it is rendered, so the engine starts on the first requests while the rest still
        render (rendering all first left the engine idle for a third of a 512-request batch); it
        does not pay AsyncLLM's thread-pool hop per request for rendering. A lost image, or a
        prompt the batch render refuses, fails or falls back for that request only."""
        fetched = await self._fetch_images(requests, images)
        finished: asyncio.Queue = asyncio.Queue()
        tasks: list[asyncio.Task] = []
        remaining = len(requests)
        try:
            for start in range(0, len(requests), self.config.render_chunk):
                self._start_chunk(range(start, min(start + self.config.render_chunk, len(requests))),
                                  requests, fetched, finished, tasks)
                await asyncio.sleep(0)  # let this chunk's requests reach the engine before the next renders
            while remaining:
                ready = [await finished.get()]
                while not finished.empty():
                    ready.append(finished.get_nowait())
                remaining -= len(ready)
                yield [(index, done.result() if isinstance(done, asyncio.Task) else done) for index, done in ready]
        finally:
            for task in tasks:
                task.cancel()

    def _start_chunk(self, chunk: range, requests: list[ModelRequest], fetched: list, finished: asyncio.Queue,
                     tasks: list[asyncio.Task]) -> None:
        """Render the chunk's prompts together and start each request; a finished one lands in
        `finished` as (index, task), a request already failed as (index, result)."""
        loop = asyncio.get_running_loop()
        rendered = self._render_batch([requests[i] for i in chunk], [fetched[i] for i in chunk])
        for index, engine_input in zip(chunk, rendered):
            pics = fetched[index]
            if isinstance(pics, dict):  # already a failure result
                finished.put_nowait((index, pics))
                continue
            task = loop.create_task(self._serve(requests[index], pics, engine_input))
            _report_when_done(task, index, finished)
            tasks.append(task)

    async def _fetch_images(self, requests: list[ModelRequest], images: list[list[Any]]) -> list:
        """Each request's images with every ObjectRef resolved (each distinct ref fetched once, also
        when several `ImageCrop`s are cut from it); a request whose image is lost gets a retryable
        failure result instead."""
        refs = list({ref: None for pics in images for ref in map(_whole, pics) if isinstance(ref, ray.ObjectRef)})
        values = dict(zip(refs, await asyncio.gather(*refs, return_exceptions=True))) if refs else {}
        out: list = []
        for request, pics in zip(requests, images):
            resolved = []
            for pic in pics:
                whole = _whole(pic)
                resolved.append(_cut(pic, values[whole] if isinstance(whole, ray.ObjectRef) else whole))
            bad = next((v for v in resolved if isinstance(v, BaseException)), None)
            if bad is None:
                out.append(resolved)
            else:
                out.append(_failure(request, f"image unavailable: {type(bad).__name__}", attempts=1, retryable=True))
        return out

    def _render_batch(self, requests: list[ModelRequest], fetched: list) -> list[Any]:
        """Engine inputs for the batch, rendered together; None where a request is left to the
        per-request path (its prompt does not build, or the batch render raised)."""
        from vllm.renderers.inputs.preprocess import parse_model_prompt

        rendered: list[Any] = [None] * len(requests)
        todo, prompts = [], []
        for index, (request, pics) in enumerate(zip(requests, fetched)):
            if isinstance(pics, dict):
                continue
            try:
                prompts.append(parse_model_prompt(self.engine.model_config, self._prompt(request, pics)))
            except Exception:  # noqa: BLE001 - the per-request path reports it
                continue
            todo.append(index)
        if not todo:
            return rendered
        try:
            inputs = self.engine.renderer.render_cmpl(prompts, self.engine.renderer.default_cmpl_tok_params)
        except Exception:  # noqa: BLE001 - e.g. one bad image: each request then renders alone
            return rendered
        for index, engine_input in zip(todo, inputs):
            rendered[index] = engine_input
        return rendered

    def _prompt(self, request: ModelRequest, images: list) -> dict[str, Any]:
        assert self.builder is not None, "start() the actor before generate()"
        built = self.builder.build(request.messages, len(images))
        prompt: dict[str, Any] = {"prompt_token_ids": built.token_ids}
        if images:
            prompt["multi_modal_data"] = {"image": images if len(images) > 1 else images[0]}
        return prompt

    async def _serve(self, request: ModelRequest, images: list, rendered: Any) -> dict:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._generate(request, images, rendered)
        finally:
            self.in_flight -= 1
            self.served += 1

    async def _generate(self, request: ModelRequest, images: list, rendered: Any = None) -> dict:
        if rendered is not None:
            prompt = rendered
        else:
            try:
                prompt = self._prompt(request, images)
            except PromptError as exc:
                return _failure(request, f"bad prompt: {exc}", attempts=1, retryable=False)
        budget = request.max_tokens
        tries = 2 if request.structured else 1
        final: Any = None
        for attempt in range(1, tries + 1):
            try:
                final = None
                request_id = f"{request.id}#{uuid.uuid4().hex[:12]}"
                async for output in self.engine.generate(prompt, sampling_params_for(request, budget), request_id):
                    final = output
            except Exception as exc:
                if _is_engine_dead(exc):
                    raise  # the pool replaces this actor and re-sends
                retryable = not isinstance(exc, (ValueError, TypeError))  # input validation errors repeat
                return _failure(request, f"{type(exc).__name__}: {exc}", attempts=attempt, retryable=retryable)
            completion = final.outputs[0]
            result = {
                "id": request.id,
                "ok": True,
                "text": completion.text,
                "finish_reason": completion.finish_reason,
                "prompt_tokens": len(final.prompt_token_ids or []),
                "output_tokens": len(completion.token_ids),
                "attempts": attempt,
                "error": None,
                "retryable": False,
                "logprobs": token_logprobs(completion.logprobs) if request.logprobs else None,
            }
            if completion.finish_reason == "length" and request.structured:
                if attempt < tries:
                    budget *= 2
                    continue
                result.update(ok=False, error="length")
            return result
        raise AssertionError("unreachable")

    async def metrics(self) -> dict:
        """Actor-side counters and the engine's cache metrics (summed over label sets)."""
        from vllm.v1.metrics.reader import Counter, Gauge, get_metrics_snapshot

        out: dict[str, float] = {key: 0 for key in ENGINE_METRICS.values()}
        for metric in get_metrics_snapshot():
            key = ENGINE_METRICS.get(metric.name)
            if key is not None and isinstance(metric, (Counter, Gauge)):
                out[key] += metric.value
        out.update(in_flight=self.in_flight, max_in_flight=self.max_in_flight, served=self.served)
        return out

    async def reset_caches(self) -> None:
        """Drop the engine's prefix, multimodal and encoder caches (benchmarks compare cold passes)."""
        await self.engine.reset_prefix_cache()
        await self.engine.reset_mm_cache()
        await self.engine.reset_encoder_cache()

    async def until_stopped(self) -> None:
        """Never returns: the owning pool keeps one call pending, which fails the moment the actor dies,
        so a dead engine is replaced even when every request on it came from an annotator."""
        await asyncio.Event().wait()

    async def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None


def _whole(image: Any) -> Any:
    """The image an `ImageCrop` is cut from, or the image itself."""
    return image.image if isinstance(image, ImageCrop) else image


def _cut(image: Any, whole: Any) -> Any:
    """`image` once its whole image is resolved to `whole`: the crop it asks for, or `whole`; a
    failure (an exception from fetching) stays what it is."""
    if isinstance(image, ImageCrop) and not isinstance(whole, BaseException):
        return image.of(whole)
    return whole


def _failure(request: ModelRequest, error: str, attempts: int, retryable: bool) -> dict:
    return {
        "id": request.id, "ok": False, "text": "", "finish_reason": None, "prompt_tokens": 0,
        "output_tokens": 0, "attempts": attempts, "error": error, "retryable": retryable,
    }


def request_payload(request: ModelRequest) -> ModelRequest:
    """The request without its images; those travel as separate top-level arguments so Ray
    resolves ObjectRefs on the actor's side and the caller never fetches them."""
    return replace(request, images=[])
