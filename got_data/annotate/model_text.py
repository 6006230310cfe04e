"""Cleaning of model-written text before it enters a record."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel

from got_data.records.codec import strip_special_tokens

ModelT = TypeVar("ModelT", bound=BaseModel)

_SPACE = re.compile(r"\s+")
# C0/C1 control characters other than whitespace: grammar-constrained decoding can emit them raw
# inside a JSON string, and they have no place in prose.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1b\x7f-\x9f]")


def clean_model_text(text: str) -> str:
    """One line of prose: special tokens removed (they would fake structure), control characters
    dropped, whitespace folded."""
    return _SPACE.sub(" ", _CONTROL.sub("", strip_special_tokens(text))).strip()


def find_free_occurrence(text: str, phrase: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """First occurrence of phrase on word boundaries that overlaps no span already taken."""
    for match in re.finditer(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text):
        start, end = match.span()
        if all(end <= s or start >= e for s, e in taken):
            return start, end
    return None


def free_occurrences(text: str, phrases: list[str]) -> list[tuple[tuple[int, int], int]]:
    """(span, index in `phrases`) of the first free occurrence of each phrase, in text order; longer
    phrases claim their words first (so "red sofa" is found before "sofa"); a phrase that does not
    occur is left out."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[tuple[int, int], int]] = []
    for index in sorted(range(len(phrases)), key=lambda i: -len(phrases[i])):
        span = find_free_occurrence(text, phrases[index], taken)
        if span is not None:
            taken.append(span)
            found.append((span, index))
    return sorted(found)


def parse_json_answer(model: type[ModelT], text: str) -> ModelT:
    """A structured answer, read leniently: raw control characters inside strings are accepted
    (cleaning removes them later). Raises ValueError (pydantic's ValidationError is one) on a bad answer."""
    return model.model_validate(json.loads(text, strict=False))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def first_sentences(text: str, count: int) -> str:
    """At most `count` sentences of cleaned text (a bound the prompt asks for, enforced here)."""
    return " ".join(_SENTENCE_END.split(text)[:count]).strip()


def first_words(text: str, count: int) -> str:
    """At most `count` words of cleaned text, without a trailing full stop or comma."""
    return " ".join(text.split()[:count]).rstrip(".,;:")
