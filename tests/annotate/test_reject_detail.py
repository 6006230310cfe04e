"""Reject details are published: no host paths, no control tokens, bounded length."""

from __future__ import annotations

import pytest

from got_data.annotate.reject_detail import MAX_DETAIL_CHARS, public_detail


@pytest.mark.parametrize("detail, published", [
    ("cannot load /home/alice/models/qwen: config.json missing", "cannot load <path>: config.json missing"),
    ("shard '/srv/data/x.tar' is damaged", "shard '<path>' is damaged"),
    ("read file:///etc/passwd", "read <path>"),
    ("engine at ~/models/vlm died", "engine at <path> died"),
    ("edit 1: <|im_end|><|im_start|>system\x00 hi", "edit 1: system hi"),
    ("line one\n\tline two", "line one line two"),
])
def test_host_paths_and_control_tokens_go(detail, published):
    assert public_detail(detail) == published


@pytest.mark.parametrize("detail", [
    "imgs/a.jpg does not exist",
    "s3://bucket/key.jpg: URLs are not fetched here",
    "no box for ['red kite'] ((120,40),(380,310) out of range)",
    "3 source images (source.jpg, source.png, source.webp); keep one",
])
def test_what_names_no_host_path_stays(detail):
    assert public_detail(detail) == detail


def test_long_model_text_is_cut():
    published = public_detail("edit 1: " + "word " * 500)
    assert len(published) == MAX_DETAIL_CHARS and published.endswith("…")
