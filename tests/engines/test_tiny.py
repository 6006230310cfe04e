"""Tiny offline checkpoints: deterministic, idempotent, loadable by transformers."""

from __future__ import annotations

import hashlib

from typer.testing import CliRunner

from got_data.cli.models import app
from got_data.engines.tiny_models import MARKER, SPECIAL_TOKENS, build_tiny_models


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic_and_idempotent(tmp_path, tiny_models):
    built = build_tiny_models(tmp_path / "a")
    for role in ("vlm", "llm"):
        folder = getattr(built, role)
        assert (folder / MARKER).is_file()
        assert _digest(folder / "model.safetensors") == _digest(getattr(tiny_models, role) / "model.safetensors")
        assert _digest(folder / "tokenizer.json") == _digest(getattr(tiny_models, role) / "tokenizer.json")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*")}
    build_tiny_models(tmp_path / "a")
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*")}


def test_transformers_loads_them(tiny_models):
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer

    vlm = AutoConfig.from_pretrained(tiny_models.vlm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.vlm)
    assert vlm.model_type == "qwen2_vl"
    assert vlm.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert vlm.vision_config.hidden_size == vlm.text_config.hidden_size
    text = vlm.text_config
    assert text.hidden_size // text.num_attention_heads == 64
    assert sum(text.rope_parameters["mrope_section"]) == 32
    assert all(tokenizer.convert_tokens_to_ids(t) != tokenizer.unk_token_id for t in SPECIAL_TOKENS)
    assert AutoProcessor.from_pretrained(tiny_models.vlm).image_processor is not None
    assert AutoConfig.from_pretrained(tiny_models.llm).model_type == "qwen2"


def test_cli_tiny_command(tiny_models):
    result = CliRunner().invoke(app, ["tiny", str(tiny_models.vlm.parent)])
    assert result.exit_code == 0, result.output
    assert f"vlm: {tiny_models.vlm}" in result.output
