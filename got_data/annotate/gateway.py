"""The stages' one door to the model pools: builds the request from the stage's prompt template and
sampling, counts tokens per stage, and turns a failed answer into a reject."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from got_data.annotate.stage import Stage, StageReject
from got_data.engines.types import Message, ModelRequest, ModelResponse, Part
from got_data.spec import PromptTemplate


def request_messages(system: str | None, user: str, image_count: int) -> list[Message]:
    """The chat messages of a stage request: the system text if any, then the images before the user text
    (so requests about one image share their prefix in the engine's cache)."""
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    content: list[Part] = [{"type": "image"} for _ in range(image_count)] + [{"type": "text", "text": user}]
    messages.append({"role": "user", "content": content})
    return messages


class ModelGateway:
    def __init__(self, pools: Mapping[str, Any], pixel_bounds: Mapping[str, tuple[int | None, int | None]]):
        self.pools = pools
        self._pixel_bounds = pixel_bounds
        self._ids = itertools.count()

    def pixel_bounds(self, role: str) -> tuple[int | None, int | None]:
        return self._pixel_bounds.get(role, (None, None))

    async def ask(
        self,
        stage: Stage,
        work: Any,
        values: dict[str, str],
        images: list[Any] | None = None,
        section: str = "user",
        json_schema: dict | None = None,
        regex: str | None = None,
        skip_special_tokens: bool = True,
        reject_on_failure: bool = True,
        tag: str | None = None,
        max_tokens: int | None = None,
        prompt: PromptTemplate | None = None,
    ) -> str | None:
        """The model's answer text. On failure: StageReject, or None when reject_on_failure is False.
        `tag` tells apart requests a stage makes with the same values (e.g. the crop before and after);
        `max_tokens` replaces the stage's own for a request that answers several questions at once;
        `prompt` asks another stage's question in its words (verify re-grounding with ground's prompt),
        named in the request's context."""
        response = await self._send(stage, work, values, images, section, json_schema, regex, skip_special_tokens, tag,
                                    max_tokens=max_tokens, prompt=prompt)
        if response.ok:
            return response.text
        if reject_on_failure:
            raise StageReject(stage.name, "model_failure", response.error or "unknown error")
        return None

    async def ask_logprobs(
        self, stage: Stage, work: Any, values: dict[str, str], images: list[Any] | None = None, regex: str | None = None,
        top: int = 10, tag: str | None = None,
    ) -> list[dict[str, float]] | None:
        """The log-probabilities of the answer's tokens (per token, the `top` likeliest by text), or
        None when the request failed: for questions scored by how sure the model is (yes/no)."""
        response = await self._send(stage, work, values, images, "user", None, regex, True, tag, logprobs=top)
        return response.logprobs if response.ok and response.logprobs else None

    async def _send(self, stage: Stage, work: Any, values: dict[str, str], images: list[Any] | None, section: str,
                    json_schema: dict | None, regex: str | None, skip_special_tokens: bool, tag: str | None,
                    logprobs: int | None = None, max_tokens: int | None = None,
                    prompt: PromptTemplate | None = None) -> ModelResponse:
        assert stage.prompt is not None and stage.role is not None
        system, user = (prompt or stage.prompt).render(section, **values)
        images = images or []
        messages = request_messages(system, user, len(images))
        sampling = stage.sampling()
        if max_tokens is not None:
            sampling["max_tokens"] = max_tokens
        context: dict[str, Any] = {"stage": stage.name, "section": section, "values": dict(values), "tag": tag,
                                   "input_ref": work.item.input_ref}
        if prompt is not None:
            context["prompt"] = prompt.path.name
        request = ModelRequest(
            id=f"{work.item.input_ref}|{stage.name}|{next(self._ids)}",
            messages=messages,
            images=images,
            json_schema=json_schema,
            regex=regex,
            skip_special_tokens=skip_special_tokens,
            logprobs=logprobs,
            context=context,
            **sampling,
        )
        response = await self.pools[stage.role].generate(request)
        work.usage.add(stage.name, response.prompt_tokens, response.output_tokens)
        return response
