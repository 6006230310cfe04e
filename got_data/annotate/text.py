"""Cleaning of model-written text before it enters a record."""

from __future__ import annotations

import re

from got_data.records.codec import strip_special_tokens

_SPACE = re.compile(r"\s+")


def clean_model_text(text: str) -> str:
    """One line of prose: special tokens removed (they would fake structure), whitespace folded."""
    return _SPACE.sub(" ", strip_special_tokens(text)).strip()
