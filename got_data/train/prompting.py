"""Token sequences the MLLM reads and writes, assembled piece by piece.

Layout (Qwen chat format):
    <|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n[<|vision_start|><|image_pad|>*n<|vision_end|>]
    {prompt or instruction}<|im_end|>\\n<|im_start|>assistant\\n{GoT}<|img_gen_0|>...<|img_gen_N-1|><|im_end|>
The prompt is untrusted text: its `<|...|>` tokens are stripped and it is tokenized with special-token
splitting off, so it can never inject control or image-generation tokens. The GoT was validated by
the record layer (only grounding tokens). Labels cover the GoT and the first image-generation token,
which teaches the model where its reasoning ends and image generation starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from got_data.records import strip_special_tokens

IGNORE_INDEX = -100
SYSTEM_PROMPT = "You are a helpful assistant."
GEN_TOKEN_FORMAT = "<|img_gen_{}|>"


def gen_token_names(count: int) -> list[str]:
    return [GEN_TOKEN_FORMAT.format(i) for i in range(count)]


def add_gen_tokens(tokenizer, count: int) -> list[int]:
    """Add the image-generation tokens (as special tokens) if missing; returns their ids in order."""
    from transformers import AddedToken

    names = gen_token_names(count)
    missing = [n for n in names if n not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(n, special=True, normalized=False) for n in missing], special_tokens=True)
    return tokenizer.convert_tokens_to_ids(names)


@dataclass
class EncodedPrompt:
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None


class ChatEncoder:
    """Turns (instruction, optional source image, GoT) into model inputs; used by training and generation."""

    def __init__(self, tokenizer, image_processor, gen_token_ids: list[int], max_got_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.gen_token_ids = list(gen_token_ids)
        self.max_got_tokens = max_got_tokens
        ids = tokenizer.convert_tokens_to_ids
        self.im_start, self.im_end = ids("<|im_start|>"), ids("<|im_end|>")
        self.vision_start, self.vision_end, self.image_pad = ids("<|vision_start|>"), ids("<|vision_end|>"), ids("<|image_pad|>")
        self.merge = getattr(image_processor, "merge_size", 2)

    def _text(self, text: str, split_special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=split_special).input_ids

    def _image(self, image: Image.Image | None) -> tuple[list[int], torch.Tensor | None, torch.Tensor | None]:
        if image is None:
            return [], None, None
        out = self.image_processor(images=[image.convert("RGB")], return_tensors="pt")
        grid = out["image_grid_thw"]
        count = int(grid.prod()) // (self.merge**2)
        return [self.vision_start] + [self.image_pad] * count + [self.vision_end], out["pixel_values"], grid

    def prompt(self, instruction: str, image: Image.Image | None) -> EncodedPrompt:
        """The conversation up to the assistant's turn (what generation starts from)."""
        vision, pixels, grid = self._image(image)
        ids = (
            [self.im_start] + self._text(f"system\n{SYSTEM_PROMPT}", False) + [self.im_end] + self._text("\n", False)
            + [self.im_start] + self._text("user\n", False) + vision
            + self._text(strip_special_tokens(instruction), True) + [self.im_end] + self._text("\n", False)
            + [self.im_start] + self._text("assistant\n", False)
        )
        return EncodedPrompt(ids, [IGNORE_INDEX] * len(ids), pixels, grid)

    def got_ids(self, got: str) -> list[int]:
        return self._text(got, False)[: self.max_got_tokens]

    def with_got(self, instruction: str, image: Image.Image | None, got: str) -> EncodedPrompt:
        """Prompt + GoT + image-generation tokens + end of turn; labels on the GoT and the first gen token."""
        head = self.prompt(instruction, image)
        got_ids = self.got_ids(got)
        tail = self.gen_token_ids + [self.im_end]
        labels = head.labels + got_ids + [self.gen_token_ids[0]] + [IGNORE_INDEX] * (len(tail) - 1)
        return EncodedPrompt(head.input_ids + got_ids + tail, labels, head.pixel_values, head.image_grid_thw)

    def decode_got(self, ids: list[int]) -> str:
        """Text the model wrote, cut at the first image-generation or end-of-turn token."""
        stops = set(self.gen_token_ids) | {self.im_end}
        cut = next((i for i, t in enumerate(ids) if t in stops), len(ids))
        return self.tokenizer.decode(ids[:cut], skip_special_tokens=False)
