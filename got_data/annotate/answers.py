"""Schemas of the structured answers stages ask the models for.

They bound every string (maxLength) so even a model that never closes a string ends inside its
token budget, and they are what `output_schema` names in a pipeline spec.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from got_data.errors import SpecError


class RecaptionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=300, description="one concise sentence")
    description: str = Field(min_length=1, max_length=1500, description="one detailed paragraph")


class EntityAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entities: list[str] = Field(max_length=12, description="object phrases, each copied verbatim from the description")


ANSWER_SCHEMAS: dict[str, type[BaseModel]] = {"recaption": RecaptionAnswer, "entities": EntityAnswer}


def answer_model(name: str) -> type[BaseModel]:
    try:
        return ANSWER_SCHEMAS[name]
    except KeyError as exc:
        raise SpecError(f"unknown output_schema {name!r}; known: {sorted(ANSWER_SCHEMAS)}") from exc


_CLAUSE_SPLIT = re.compile(r"[.,;:!?()\[\]\"]+|\s[-–—]\s")
_WORD = re.compile(r"\S+")


def candidate_phrases(text: str, max_words: int = 5, limit: int = 1000) -> list[str]:
    """Every run of 1..max_words words inside one clause of text, first occurrence order, deduplicated.

    Entity extraction constrains its answer to these, so each phrase is verbatim in the description
    by construction, whatever the model.
    """
    seen: dict[str, None] = {}
    for clause in _CLAUSE_SPLIT.split(text):
        words = _WORD.findall(clause)
        for i in range(len(words)):
            for n in range(1, max_words + 1):
                if i + n > len(words):
                    break
                seen.setdefault(" ".join(words[i : i + n]), None)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def entity_schema(candidates: list[str], max_items: int = 12) -> dict[str, Any]:
    """JSON schema of EntityAnswer whose items must be one of the candidate phrases."""
    return {
        "type": "object",
        "properties": {
            "entities": {"type": "array", "items": {"type": "string", "enum": candidates}, "maxItems": max_items}
        },
        "required": ["entities"],
        "additionalProperties": False,
    }
