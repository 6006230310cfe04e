"""Model pools against real Ray and real vLLM (CPU build) with the tiny models."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, Field

from got_data.engines.pool import ModelPool
from got_data.engines.types import ModelRequest

pytestmark = pytest.mark.engine


class Verdict(BaseModel):
    label: str = Field(max_length=16)
    count: int = Field(ge=0, le=20)
    visible: bool
    kind: Literal["object", "scene", "text"]


def make_images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (48 + 8 * (i % 5), 64, 3), dtype=np.uint8)) for i in range(n)]


def image_request(rid: str, image, question: str, system: str | None = None, **kwargs) -> ModelRequest:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return ModelRequest(id=rid, messages=messages, images=[image], **kwargs)


def text_request(rid: str, prompt: str, **kwargs) -> ModelRequest:
    return ModelRequest(id=rid, messages=[{"role": "user", "content": prompt}], **kwargs)


def test_structured_answers_parse(vlm_pool, ray_session):
    images = make_images(8)
    refs = [ray_session.put(img) for img in images[:4]]  # ObjectRefs and PIL images both work
    schema = Verdict.model_json_schema()
    requests = [image_request(f"s{i}", (refs + images[4:])[i % 8], f"Judge <|im_end|> image {i}.",
                              json_schema=schema, max_tokens=96) for i in range(24)]
    responses = vlm_pool.generate_many(requests)
    assert [r.id for r in responses] == [r.id for r in requests]
    for response in responses:
        assert response.ok, response
        assert response.finish_reason == "stop"
        Verdict.model_validate_json(response.text)
        assert " " not in response.text.replace(response.text.split('"label":"')[1].split('"')[0], "")
        assert response.prompt_tokens > 20 and response.output_tokens > 0 and response.latency_s > 0


def test_yes_no_logprobs_come_back_per_answer_token(vlm_pool):
    from got_data.annotate.verification import YES_NO_REGEX, yes_no_margin

    images = make_images(4, seed=5)
    requests = [image_request(f"v{i}", image, "Does this picture show a red circle? Answer yes or no.",
                              regex=YES_NO_REGEX, max_tokens=4, logprobs=5) for i, image in enumerate(images)]
    requests.append(image_request("plain", images[0], "Describe.", max_tokens=2))
    *asked, plain = vlm_pool.generate_many(requests)
    for response in asked:
        assert response.ok, response
        assert response.text.lower() in ("yes", "no")
        assert len(response.logprobs) == response.output_tokens
        first = response.logprobs[0]
        assert 1 <= len(first) <= 6 and all(value <= 0 for value in first.values())  # the top 5 and the token drawn
        assert -1 <= yes_no_margin(first) <= 1
    assert plain.ok and plain.logprobs is None


def test_length_is_retried_once_then_reported(vlm_pool):
    [image] = make_images(1, seed=3)
    response = vlm_pool.generate_many(
        [image_request("tight", image, "Judge.", json_schema=Verdict.model_json_schema(), max_tokens=3)]
    )[0]
    assert not response.ok and response.error == "length"
    assert response.finish_reason == "length" and response.attempts == 2
    assert response.output_tokens == 6  # the retry had twice the budget


def test_256_at_once_stay_within_bound(vlm_pool, vlm_config):
    images = make_images(16, seed=1)
    requests = [image_request(f"b{i}", images[i % 16], f"Describe {i}.", max_tokens=16) for i in range(256)]
    before = vlm_pool.stats()["actors"][0]["engine"]["served"]
    responses = vlm_pool.generate_many(requests)
    assert sorted(r.id for r in responses) == sorted(r.id for r in requests)
    assert all(r.ok for r in responses)
    [actor] = vlm_pool.stats()["actors"]
    bound = vlm_config.max_in_flight_per_actor
    assert actor["max_in_flight"] == bound  # reached, never passed (caller side)
    assert actor["engine"]["max_in_flight"] <= bound  # and what the actor itself saw
    assert actor["engine"]["served"] - before == 256


def test_seeded_sampling_survives_prompts_longer_than_a_step(vlm_pool):
    """Seeded requests whose prompts together exceed a step's token budget: with chunked prefill
    vLLM's CPU build killed the engine ("CPU Generator does not use offset")."""
    images = make_images(8, seed=5)
    question = " ".join(f"Is there a shape number {n} in the picture?" for n in range(24))
    requests = [image_request(f"seeded{i}", images[i % 8], question, max_tokens=8, temperature=1.0, seed=7)
                for i in range(48)]
    restarts = vlm_pool.stats()["actors"][0]["restarts"]
    responses = vlm_pool.generate_many(requests)
    assert all(r.ok for r in responses), [r.error for r in responses if not r.ok][:3]
    assert sum(r.prompt_tokens for r in responses[:32]) > 2 * 2048  # more than one step can take
    assert vlm_pool.stats()["actors"][0]["restarts"] == restarts


def test_two_stages_share_one_vlm_pool(vlm_pool, vlm_config):
    images = make_images(6, seed=2)
    # Stages share a long guideline, so prompts span several KV blocks before the text differs.
    guideline = "You annotate images for a dataset of reasoning chains. " * 30

    async def recaption() -> list:
        pool = ModelPool.start(vlm_config)
        try:
            return await asyncio.gather(*(pool.generate(image_request(f"r{i}", im, "Describe.", guideline, max_tokens=8))
                                          for i, im in enumerate(images)))
        finally:
            pool.shutdown()

    async def ground() -> list:
        pool = ModelPool.start(vlm_config)
        try:
            return await asyncio.gather(*(pool.generate(image_request(f"g{i}", im, "Where is the cat?", guideline,
                                                                      max_tokens=8))
                                          for i, im in enumerate(images)))
        finally:
            pool.shutdown()

    assert ModelPool.start(vlm_config) is vlm_pool
    vlm_pool.shutdown()  # releases only the extra hold taken just above
    before = vlm_pool.stats()["engine"]
    first = asyncio.run(recaption())  # each stage in its own event loop
    second = asyncio.run(ground())
    assert all(r.ok for r in first + second)
    stats = vlm_pool.stats()
    assert len(stats["actors"]) == 1 and stats["users"] == 1
    assert len({a["pid"] for a in stats["actors"]}) == 1
    # The second stage reused the first stage's prefixes and processed images in the one engine.
    after = stats["engine"]
    assert after["prefix_cache_hits"] > before["prefix_cache_hits"]
    assert after["mm_cache_hits"] - before["mm_cache_hits"] >= len(images)


def test_one_call_of_many_chunks_answers_each_request_once(vlm_pool, vlm_config, ray_session):
    """More requests than the actor renders at a time, in one call: a bad prompt in the second
    render chunk and an image whose producing task failed in the third fail alone; every request
    gets exactly one answer."""
    chunk = vlm_config.render_chunk
    count = 2 * chunk + 6
    images = [ray_session.put(image) for image in make_images(count, seed=3)]
    requests = [image_request(f"r{i}", ref, "What is this?", max_tokens=3) for i, ref in enumerate(images)]
    bad, lost = chunk + 8, 2 * chunk + 2
    two_parts = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "?"}]}]
    requests[bad] = ModelRequest(id=f"r{bad}", messages=two_parts, images=[images[bad]], max_tokens=3)

    @ray_session.remote(max_retries=0)
    def broken_decode():
        raise OSError("truncated image")

    requests[lost] = image_request(f"r{lost}", broken_decode.remote(), "What is this?", max_tokens=3)
    responses = vlm_pool.generate_many(requests)
    assert [r.id for r in responses] == [f"r{i}" for i in range(count)]
    failed = {i for i, r in enumerate(responses) if not r.ok}
    assert failed == {bad, lost}, [responses[i].error for i in failed]
    assert "bad prompt" in responses[bad].error
    assert "image unavailable" in responses[lost].error
    assert all(r.output_tokens > 0 for i, r in enumerate(responses) if i not in failed)


def test_failures_come_back_as_results(llm_pool):
    [image] = make_images(1)
    too_long = text_request("long", "word " * 3000, max_tokens=4)
    with_image = ModelRequest(id="img", messages=[{"role": "user", "content": "hi"}], images=[image])
    responses = llm_pool.generate_many([too_long, with_image, text_request("fine", "hello", max_tokens=4)])
    assert [r.ok for r in responses] == [False, False, True]
    assert "bad prompt" in responses[1].error and responses[1].attempts == 1
    assert responses[0].error


def test_killed_actor_loses_nothing(llm_pool, ray_session):
    requests = [text_request(f"k{i}", f"Tell a long story number {i}.", max_tokens=200) for i in range(160)]
    restarts_before = llm_pool.stats()["actors"][0]["restarts"]
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("out", llm_pool.generate_many(requests)))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = llm_pool.stats()["actors"][0]
        if row["completed"] > 0 and row["in_flight"] > 0:
            break
        time.sleep(0.05)
    [victim] = llm_pool.actors()
    ray_session.kill(victim, no_restart=True)
    runner.join(timeout=240)
    assert not runner.is_alive()
    responses = result["out"]
    ids = [r.id for r in responses]
    assert ids == [r.id for r in requests] and len(set(ids)) == len(ids)  # each answered exactly once
    assert all(r.ok for r in responses), [r.error for r in responses if not r.ok][:3]
    assert any(r.attempts >= 2 for r in responses)  # some were in flight on the killed actor
    [row] = llm_pool.stats()["actors"]
    assert row["restarts"] == restarts_before + 1 and row["live"]
