"""Schemas of the structured answers stages ask the models for.

They bound every string (maxLength) so even a model that never closes a string ends inside its
token budget. Each stage picks its own (a spec does not name them): `ask_json` parses answers into them.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RecaptionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="one concise sentence")
    description: str = Field(min_length=1, description="one detailed paragraph")


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """pydantic builds a model's schema anew on every call (about a millisecond): once per model."""
    return model.model_json_schema()


def bounded_schema(model: type[BaseModel], max_chars: dict[str, int]) -> dict[str, Any]:
    """The model's JSON schema with maxLength set on the named string fields (from stage options).
    Built once per (model, bounds) and shared by every request that asks with it: not to be mutated."""
    return _bounded_schema(model, tuple(sorted((name, int(limit)) for name, limit in max_chars.items())))


@functools.lru_cache(maxsize=256)
def _bounded_schema(model: type[BaseModel], max_chars: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    schema = copy.deepcopy(_json_schema(model))
    for name, limit in max_chars:
        schema["properties"][name]["maxLength"] = limit
    return schema


class EntityAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entities: list[str] = Field(description="object phrases, each copied verbatim from the description")


class DescriptionAnswer(BaseModel):
    """describe (an image, at most two sentences) and crop_describe (a region, a few words)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1)


class EditParseAnswer(BaseModel):
    """edit_parse: the edit's type, the instruction's phrase(s) for what is edited, and for a replace
    what takes its place. The schema (`edit_parse_schema`) limits phrases to word runs of the instruction."""

    model_config = ConfigDict(extra="forbid")

    edit_type: str
    objects: list[str] = Field(min_length=1)
    new_object: str = ""


class ReinstructAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rewrites: list[str] = Field(min_length=1, description="rewrites of the instruction, the first concise")


class EditChainStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: str = Field(min_length=1, description="which object is edited, and where it is")
    change: str = Field(min_length=1, description="how it changes")


class EditChainAnswer(BaseModel):
    """assemble_edit: the prose of each edit's steps; boxes are inserted by the codec, never written."""

    model_config = ConfigDict(extra="forbid")

    steps: list[EditChainStep] = Field(min_length=1)


class InContextGotAnswer(BaseModel):
    """assemble_edit in context: the numbered GoT's lines, boxes named only by placeholders, and the
    one-sentence change of each edit (the record's `EditOp.change`)."""

    model_config = ConfigDict(extra="forbid")

    got: list[str] = Field(min_length=1, description="the numbered GoT's lines, with placeholders")
    changes: list[str] = Field(min_length=1, description="how each edit changes its object, in edit order")

    def text(self) -> str:
        return "\n".join(self.got)


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
        for i, first in enumerate(words):
            phrase = first
            for word in [None, *words[i + 1 : i + max_words]]:
                if word is not None:
                    phrase = f"{phrase} {word}"
                seen.setdefault(phrase, None)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def verbatim_phrases(answered: list[str], text: str, limit: int) -> list[str]:
    """The answered phrases that occur in `text`, each once, in answer order, at most `limit` (the
    constraint already keeps them verbatim; an answer read unconstrained is checked here)."""
    phrases: list[str] = []
    for phrase in answered:
        if phrase.strip() and phrase in text and phrase not in phrases:
            phrases.append(phrase)
    return phrases[:limit]


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


def edit_parse_schema(candidates: list[str], edit_types: list[str], max_objects: int) -> dict[str, Any]:
    """JSON schema of EditParseAnswer: the type one of `edit_types`, each phrase one of `candidates`
    (word runs of the instruction), the new object one of them or empty."""
    return {
        "type": "object",
        "properties": {
            "edit_type": {"type": "string", "enum": edit_types},
            "objects": {"type": "array", "items": {"type": "string", "enum": candidates}, "minItems": 1,
                        "maxItems": max_objects},
            "new_object": {"type": "string", "enum": ["", *candidates]},
        },
        "required": ["edit_type", "objects", "new_object"],
        "additionalProperties": False,
    }


def reinstruct_schema(count: int, max_chars: int) -> dict[str, Any]:
    """JSON schema of ReinstructAnswer: 1..count rewrites of at most max_chars each."""
    return {
        "type": "object",
        "properties": {
            "rewrites": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": max_chars},
                         "minItems": 1, "maxItems": count},
        },
        "required": ["rewrites"],
        "additionalProperties": False,
    }


def edit_chain_schema(steps: int, max_object_chars: int, max_change_chars: int) -> dict[str, Any]:
    """JSON schema of EditChainAnswer with exactly `steps` steps, every string bounded."""
    step = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "minLength": 1, "maxLength": max_object_chars},
            "change": {"type": "string", "minLength": 1, "maxLength": max_change_chars},
        },
        "required": ["object", "change"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": step, "minItems": steps, "maxItems": steps}},
        "required": ["steps"],
        "additionalProperties": False,
    }


class SplitAnswer(BaseModel):
    """split_instruction: a combined multi-turn instruction as ordered single-turn instructions."""

    model_config = ConfigDict(extra="forbid")

    steps: list[str] = Field(min_length=1, description="one instruction per edit, in the order they are done")


def split_schema(min_steps: int, max_steps: int, max_step_chars: int) -> dict[str, Any]:
    """JSON schema of SplitAnswer: min_steps..max_steps non-empty steps of at most max_step_chars each."""
    return {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": max_step_chars},
                      "minItems": min_steps, "maxItems": max_steps},
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def in_context_got_schema(layout: list[str], edits: int, max_change_chars: int) -> dict[str, Any]:
    """JSON schema of InContextGotAnswer: one line per `layout` pattern (`edit_placeholders.answer_layout`)
    and exactly one bounded change per edit.

    The lines are a list, not one string with "\\n" between them, so that each has its own pattern:
    under one free string a tiny model wrote the numbered layout wrongly ([1], [1, 4, 4]) and left
    regions out, where the grammar can simply hold them. The GoT's length is checked once answered
    (`max_got_chars`)."""
    change = {"type": "string", "minLength": 1, "maxLength": max_change_chars}
    lines = [{"type": "string", "pattern": pattern} for pattern in layout]
    return {
        "type": "object",
        "properties": {
            "got": {"type": "array", "prefixItems": lines, "items": False,
                    "minItems": len(lines), "maxItems": len(lines)},
            "changes": {"type": "array", "items": change, "minItems": edits, "maxItems": edits},
        },
        "required": ["got", "changes"],
        "additionalProperties": False,
    }
