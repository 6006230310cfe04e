"""Requests to and responses from a model pool.

Plain dataclasses so stages can build them without importing vLLM, and so they pickle cheaply
across Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Union

# A message part: {"type": "image"} marks where an image goes, {"type": "text", "text": ...}
# carries text. Text is untrusted: it never becomes control tokens (see prompting.py).
Part = dict[str, Any]


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: Union[str, list[Part]]


# PIL.Image.Image, ray.ObjectRef to one, or an ImageCrop of either; typed loosely so this module imports neither.
ImageLike = Any


@dataclass(frozen=True)
class ImageCrop:
    """A pixel rectangle of an image, cut where the image is resolved (the engine actor, the oracle):
    a crop costs its caller no Ray task and the object store no copy, and the image crosses the
    network at most once however many crops are asked of it."""

    image: ImageLike  # the whole image, usually an ObjectRef
    rect: tuple[int, int, int, int]  # (x1, y1, x2, y2) in its pixels

    def of(self, resolved: Any) -> Any:
        """The crop of the resolved (PIL) image."""
        return resolved.crop(self.rect)


@dataclass
class ModelRequest:
    """One generation request: messages plus the images their image parts refer to, in order."""

    id: str
    messages: list[Message]
    images: list[ImageLike] = field(default_factory=list)
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    json_schema: dict | None = None
    regex: str | None = None  # constrain the answer to this regular expression instead of a schema
    stop: list[str] | None = None
    skip_special_tokens: bool = True  # False keeps e.g. Qwen2-VL's <|box_start|> in the answer text
    # With a number k: the response carries, per answer token, the k likeliest tokens' log-probabilities
    # as the model scored them before any constraint (e.g. p(yes) and p(no) of a yes/no question).
    logprobs: int | None = None
    # What the caller asked, in its own terms (stage, prompt section, template values): never sent to
    # the model; read by replays and oracles that answer without a model, and by debugging.
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def structured(self) -> bool:
        return self.json_schema is not None or self.regex is not None


@dataclass
class ModelResponse:
    """What came back for a request. `ok=False` carries the reason in `error`; never raised."""

    id: str
    ok: bool
    text: str
    finish_reason: str | None
    prompt_tokens: int
    output_tokens: int
    latency_s: float
    attempts: int
    error: str | None = None
    # Per answer token: token text -> log-probability, the request's `logprobs` likeliest (None when not asked).
    logprobs: list[dict[str, float]] | None = None

    @classmethod
    def failure(cls, request_id: str, error: str, attempts: int, latency_s: float = 0.0,
                finish_reason: str | None = None, text: str = "",
                prompt_tokens: int = 0, output_tokens: int = 0) -> "ModelResponse":
        return cls(id=request_id, ok=False, text=text, finish_reason=finish_reason,
                   prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                   latency_s=latency_s, attempts=attempts, error=error)
