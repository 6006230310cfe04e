"""Tiny random-weight Qwen checkpoints, built offline.

Tests, demos and benchmarks need a real vLLM engine, but nothing may be downloaded. These builders
make checkpoints with the real architectures (Qwen2-VL, Qwen2) at toy size and a locally trained
byte-level BPE tokenizer carrying the Qwen special tokens, so every code path that touches the
model family (chat template, vision placeholders, grounding tokens) runs for real. The weights
are random: the models prove plumbing, not quality.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from got_data.errors import ModelError

BUILD_VERSION = 1
MARKER = ".got-data-tiny.json"
DEFAULT_SEED = 1234

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen-style ChatML template. Content is a string or a list of parts ({"type": "image"} or
# {"type": "text", "text": ...}); an image part becomes the Qwen vision placeholder.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_CORPUS = """\
A young fireman in a yellow helmet stands beside a red truck on a wet street at night.
Two brown dogs run across a green field toward a wooden fence under a cloudy sky.
The kitchen table holds a white bowl of oranges, a glass of water and a folded newspaper.
A woman in a blue coat holds an umbrella while crossing the busy city square in the rain.
On the left a tall lamp lights an old armchair; on the right a cat sleeps on a striped rug.
Mountains rise behind a calm lake where a small boat with a white sail drifts near the shore.
Replace the bicycle with a scooter, make the sky orange at sunset, remove the parked car.
Change the style to a watercolor painting and add snow on the roof of the small house.
{"prompt": "a cat on a rug", "objects": ["cat", "rug"], "box": [12, 40, 388, 912], "ok": true}
{"answer": "yes", "count": 3, "labels": ["dog", "fence", "field"], "score": 0.75}
Coordinates (0,0),(999,999) cover the whole image; (244,299),(613,902) marks one object.
0 1 2 3 4 5 6 7 8 9 10 25 50 100 250 500 999 1000 28 56 112 224 448 896 1280
"""


@dataclass(frozen=True)
class TinyModels:
    """Folders of the two tiny checkpoints."""

    vlm: Path
    llm: Path


def default_tiny_dir() -> Path:
    """Cache folder for tiny models: $GOT_DATA_HOME/tiny-models, else ~/.cache/got-data/tiny-models."""
    home = os.environ.get("GOT_DATA_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "got-data"
    return base / "tiny-models"


def _corpus() -> list[str]:
    lines = [line for line in _CORPUS.splitlines() if line]
    # Repetition with varied casing gives the BPE trainer enough pair statistics.
    return lines * 4 + [line.lower() for line in lines] + [line.upper() for line in lines]


def build_tokenizer(vocab_size: int = 1024, corpus: list[str] | None = None, split_digits: bool = False):
    """Byte-level BPE tokenizer with the Qwen special tokens and the ChatML template, trained on
    `corpus` (default: a small mixed-text corpus). `split_digits` makes every digit its own token, as
    Qwen's tokenizers do, so a coordinate is written digit by digit."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                          if split_digits else byte_level)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus if corpus is not None else _corpus(), trainer)
    core.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _padded_vocab(tokenizer) -> int:
    return ((len(tokenizer) + 63) // 64) * 64


def text_dims(hidden_size: int = 128, layers: int = 2, intermediate_size: int = 256) -> dict:
    """Qwen2 text-model sizes; head_dim stays 64 because vLLM's CPU attention rejects smaller heads."""
    heads = max(1, hidden_size // 64)
    return dict(
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=1 if heads < 4 else heads // 2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )


def vision_dims(embed_dim: int = 64, depth: int = 2) -> dict:
    """Qwen2-VL vision-tower sizes (14-pixel patches, 2x2 merge: one token per 28x28 pixels)."""
    return dict(depth=depth, embed_dim=embed_dim, num_heads=max(2, embed_dim // 64), mlp_ratio=2, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2)


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    return GenerationConfig(
        eos_token_id=ids, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )


def vlm_model(tokenizer, text: dict, vision: dict, seed: int, rope_theta: float = 1_000_000.0,
              mrope_section: tuple[int, int, int] = (16, 8, 8)):
    """A Qwen2-VL model of the given sizes, random weights from `seed`, float32. `mrope_section` splits
    the head's rotary frequencies between the temporal, height and width positions of image tokens."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(text)
    text.update(
        vocab_size=_padded_vocab(tokenizer),
        rope_parameters={
            "rope_type": "default",
            "rope_theta": rope_theta,
            "mrope_section": list(mrope_section),  # sums to head_dim / 2
        },
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=dict(vision, hidden_size=text["hidden_size"]),  # merger output = text hidden size
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = _generation_config(tokenizer)
    return model


def save_vlm(model, tokenizer, out: Path, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
    """Weights in bfloat16, the processor (with the pixel budget, when given) and the tokenizer."""
    import torch
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    model.to(torch.bfloat16).save_pretrained(out)
    bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**bounds),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)


def llm_model(tokenizer, text: dict, seed: int):
    """A Qwen2 causal LM of the given sizes, random weights from `seed`, float32."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **text,
        vocab_size=_padded_vocab(tokenizer),
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = _generation_config(tokenizer)
    return model


def save_llm(model, tokenizer, out: Path) -> None:
    import torch

    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_vlm(out: Path, seed: int) -> None:
    tokenizer = build_tokenizer()
    save_vlm(vlm_model(tokenizer, text_dims(), vision_dims(), seed), tokenizer, out)


def _build_llm(out: Path, seed: int) -> None:
    tokenizer = build_tokenizer()
    save_llm(llm_model(tokenizer, text_dims(), seed), tokenizer, out)


_BUILDERS = {"vlm": _build_vlm, "llm": _build_llm}


def _is_complete(folder: Path, seed: int) -> bool:
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("version") == BUILD_VERSION and meta.get("seed") == seed


def build_tiny_models(root: Path | str, seed: int = DEFAULT_SEED, force: bool = False) -> TinyModels:
    """Build `root/vlm` and `root/llm`; a folder already complete for this seed is kept as is.

    Each model is written to a temporary sibling and renamed into place with its marker file, so
    an interrupted build never leaves a folder that looks complete.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for role, builder in _BUILDERS.items():
        final = root / role
        if not force and _is_complete(final, seed):
            continue
        tmp = root / f".{role}.building-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            builder(tmp, seed)
            (tmp / MARKER).write_text(json.dumps({"version": BUILD_VERSION, "seed": seed, "role": role}))
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"building the tiny {role} model in {root} failed: {exc}") from exc
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    return TinyModels(vlm=root / "vlm", llm=root / "llm")


def ensure_tiny_models(root: Path | str | None = None, seed: int = DEFAULT_SEED) -> TinyModels:
    """The tiny models under `root` (default: `default_tiny_dir()`), built only if missing."""
    return build_tiny_models(root if root is not None else default_tiny_dir(), seed=seed)
