"""Prompt token ids for a model family, built so untrusted text can never become control tokens.

The chat template is rendered with a sentinel in place of every piece of message text; the
template's own pieces are tokenized normally (so `<|im_start|>` and friends are control tokens)
and each message text with `split_special_tokens=True` (so a caption containing `<|im_end|>` is
spelled out as plain characters). vLLM receives the ids as `{"prompt_token_ids": ...}` and expands
the single `<|image_pad|>` per image into the image's patch tokens itself.

Images always come first in their user turn, then text, and the pool fixes the processor
settings, so every request about one image starts with the same tokens and the same image: vLLM's
prefix cache and multimodal cache reuse them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

from got_data.engines.errors import PromptError
from got_data.engines.types import Message, Part
from got_data.families import NAMES, UnknownFamilyError
from got_data.families import family as model_family
from got_data.records.boxes import smart_resize

_CACHED_TEXT_CHARS = 2000
_SENTINEL = re.compile("\ue000(\\d+)\ue001")



class NormalizedMessage(TypedDict):
    """A message as `PromptBuilder.normalize` returns it: content always a list of parts, images first."""

    role: str
    content: list[Part]


QWEN_CONTROL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

def resized_image_size(width: int, height: int, min_pixels: int | None = None,
                       max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) the Qwen-VL processor resizes an image to (`records.boxes.smart_resize`);
    Qwen2.5-VL boxes are in this pixel space."""
    bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    h, w = smart_resize(height, width, **bounds)
    return w, h


@dataclass(frozen=True)
class BuiltPrompt:
    """Token ids of a prompt and where each piece of message text lies in them."""

    token_ids: list[int]
    text_spans: list[tuple[int, int]]  # [start, end) of each message text, in order


class PromptBuilder:
    """Builds prompt token ids for one model family with that model's tokenizer and template."""

    def __init__(self, tokenizer: Any, family: str, chat_template: str | None = None) -> None:
        try:
            self.family = model_family(family)
        except UnknownFamilyError as exc:
            raise PromptError(str(exc)) from None
        self.tokenizer = tokenizer
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            from got_data.engines.tiny_models import CHAT_TEMPLATE

            self.chat_template = CHAT_TEMPLATE  # the Qwen ChatML layout
        self._make_caches()

    def _make_caches(self) -> None:
        # Per-builder caches: an engine actor builds thousands of prompts that share their template
        # layout and pieces, and often their text (every recaption request without a caption).
        self._render_layout = lru_cache(maxsize=256)(self._render_layout_uncached)
        self._encode_template = lru_cache(maxsize=1024)(self._encode_template_uncached)
        self._encode_short_text = lru_cache(maxsize=4096)(self._encode_text_uncached)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_render_layout", "_encode_template", "_encode_short_text")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_caches()

    @classmethod
    def from_pretrained(cls, model: str | Path, family: str) -> "PromptBuilder":
        tokenizer = load_tokenizer(model)
        template = getattr(tokenizer, "chat_template", None)
        if not template and family in NAMES and model_family(family).vision:
            # Some VL checkpoints keep the template only with the processor.
            from transformers import AutoProcessor

            template = getattr(AutoProcessor.from_pretrained(str(model)), "chat_template", None)
        return cls(tokenizer, family, chat_template=template)

    def normalize(self, messages: list[Message], num_images: int) -> list[NormalizedMessage]:
        """Messages with list content, images first in their user turn; image placeholders added to
        the first user turn when the request has images but its messages mark none."""
        out: list[NormalizedMessage] = []
        marked = 0
        for message in messages:
            role = message.get("role")
            if role not in ("system", "user", "assistant"):
                raise PromptError(f"message role must be system, user or assistant, got {role!r}")
            content = message.get("content", "")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            images: list[Part] = []
            texts: list[Part] = []
            for part in parts:
                kind = part.get("type")
                if kind == "image":
                    images.append({"type": "image"})
                elif kind == "text":
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise PromptError(f"text part without a string 'text': {part!r}")
                    texts.append({"type": "text", "text": text})
                else:
                    raise PromptError(f"unknown message part type {kind!r}; use 'image' or 'text'")
            if images and role != "user":
                raise PromptError(f"images may only appear in user messages, found one in a {role} message")
            marked += len(images)
            out.append({"role": role, "content": images + texts})
        if marked == 0 and num_images > 0:
            first_user = next((m for m in out if m["role"] == "user"), None)
            if first_user is None:
                raise PromptError("a request with images needs a user message")
            first_user["content"] = [{"type": "image"}] * num_images + first_user["content"]
            marked = num_images
        if marked != num_images:
            raise PromptError(f"messages mark {marked} image(s) but the request carries {num_images}")
        if marked and not self.family.vision:
            raise PromptError(f"family {self.family.value!r} takes no images, the request carries {marked}")
        return out

    def build(self, messages: list[Message], num_images: int = 0) -> BuiltPrompt:
        """Prompt token ids ending with the assistant turn's opening."""
        normalized = self.normalize(messages, num_images)
        texts: list[str] = []
        layout: list[tuple[str, tuple[str, ...]]] = []
        for message in normalized:
            kinds = []
            for part in message["content"]:
                kinds.append(part["type"])
                if part["type"] == "text":
                    texts.append(part["text"])
            layout.append((message["role"], tuple(kinds)))
        rendered = self._render_layout(tuple(layout))
        pieces = _SENTINEL.split(rendered)
        # split() alternates: template text, sentinel index, template text, ...
        seen = [int(i) for i in pieces[1::2]]
        if sorted(seen) != list(range(len(texts))):
            raise PromptError("the chat template dropped or repeated message text; cannot build a safe prompt")
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for n, piece in enumerate(pieces):
            if n % 2 == 0:
                ids.extend(self._encode_template(piece))
            else:
                start = len(ids)
                ids.extend(self._encode_text(texts[int(piece)]))
                spans.append((start, len(ids)))
        return BuiltPrompt(token_ids=ids, text_spans=spans)

    def _render_layout_uncached(self, layout: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
        """The chat template rendered for messages of these roles and part kinds, with the n-th
        text part replaced by a sentinel holding n."""
        texts = 0
        templated: list[dict] = []
        for role, kinds in layout:
            parts = []
            for kind in kinds:
                if kind == "text":
                    parts.append({"type": "text", "text": f"\ue000{texts}\ue001"})
                    texts += 1
                else:
                    parts.append({"type": kind})
            # Text-only templates (Qwen2.5) expect string content.
            content = parts if self.family.vision else "".join(p["text"] for p in parts)
            templated.append({"role": role, "content": content})
        return self.tokenizer.apply_chat_template(
            templated, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    def _encode_template_uncached(self, piece: str) -> tuple[int, ...]:
        if not piece:
            return ()
        return tuple(self.tokenizer(piece, add_special_tokens=False)["input_ids"])

    def _encode_text(self, text: str) -> tuple[int, ...]:
        # Only short texts are cached, so a run of huge captions cannot fill memory.
        if len(text) <= _CACHED_TEXT_CHARS:
            return self._encode_short_text(text)
        return self._encode_text_uncached(text)

    def _encode_text_uncached(self, text: str) -> tuple[int, ...]:
        if not text:
            return ()
        return tuple(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def control_token_ids(self) -> set[int]:
        """Ids of every special/added token of the tokenizer (what user text must never contain)."""
        ids = set(getattr(self.tokenizer, "all_special_ids", []) or [])
        for token in QWEN_CONTROL_TOKENS:
            tid = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != getattr(self.tokenizer, "unk_token_id", None):
                ids.add(tid)
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        ids.update(int(i) for i in added)
        return ids


def load_tokenizer(model: str | Path) -> Any:
    """A checkpoint's tokenizer exactly as its tokenizer.json defines it. AutoTokenizer picks the model
    type's class (Qwen2Tokenizer), which rebuilds the text splitting from the class's own defaults:
    the same as Qwen's checkpoints define, but not what the world's tiny models were trained with
    (their tokenizer keeps "\n\n" as two tokens), so their prompts came in token sequences they never
    saw in training. Without a local tokenizer.json (a hub id), AutoTokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(model) / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(model))
    return AutoTokenizer.from_pretrained(str(model))
