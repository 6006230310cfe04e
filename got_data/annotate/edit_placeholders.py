"""In-context edit assembly: the LLM writes the whole numbered GoT, naming boxes only by placeholders.

Each measured region (one per grounded phrase of an edit, `[R1]`, `[R2]`...) gets a placeholder listed in
the request, which the answer writes right after the phrase it grounds; each placed object (`[O1]`...)
has its placeholder already after its phrase in the description shown, and the answer names each whole
description by `[D1]` / `[D2]` (or copies it). Before anything is substituted the answer is checked: a box the
LLM wrote itself (coordinates, grounding tokens, a placeholder that was not listed), a region the text
never references, or a text that is not the numbered GoT fails it (`PlaceholderError`, a `BadAnswer`:
`ask_json` retries once, then rejects with its reason). The measured boxes are then put in through
`GotBuilder`, so the text's boxes are the measured boxes by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from got_data.annotate.ask_json import BadAnswer
from got_data.annotate.edit_chain import (
    EditGot,
    GotBuilder,
    as_sentence,
    edit_layout,
    layout_pieces,
    slot_kind,
    slot_step,
)
from got_data.annotate.grounding import regex_literal
from got_data.annotate.model_text import clean_model_text, free_occurrences
from got_data.records import Box
from got_data.records.codec import GROUNDING_TOKENS, find_special_tokens

INVENTED_BOX = "invented_box"
UNREFERENCED_REGION = "unreferenced_region"
REFUSED_GOT = "refused_got"
ASSEMBLY_REASONS = (INVENTED_BOX, UNREFERENCED_REGION, REFUSED_GOT)

# The two descriptions as a whole: the request shows "Before the edit [D1]: ..." and an answer may write
# [D1] / [D2] for the description (the prompt's worked examples do) instead of copying it word for word:
# the copy is the same text, costs a decoded token per word, and a small model copies inexactly.
SOURCE_DESCRIPTION, FINAL_DESCRIPTION = "[D1]", "[D2]"

# Anything that looks like a placeholder: a few letters and a number in square brackets ("[R1]",
# "[o 2]", "[3]"); only the listed ones, written exactly, are placeholders.
_PLACEHOLDER = re.compile(r"\[\s*[A-Za-z]{0,3}\s*\d+\s*\]")
# Boxes written out: a coordinate pair "(12, 40)", a list of four numbers, box/ref tags of other
# grounding conventions, a "bbox" key.
_WRITTEN_BOX = re.compile(
    r"\(\s*\d+(?:\.\d+)?\s*,\s*\d+(?:\.\d+)?\s*\)"
    r"|\[\s*\d+(?:\.\d+)?(?:\s*,\s*\d+(?:\.\d+)?){3}\s*\]"
    r"|</?\s*(?:ref|box|quad|object_ref|box_start|box_end)\s*>"
    r"|bbox",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"^(\d+)\.\s")


class PlaceholderError(BadAnswer):
    """An in-context answer that fails the post-check; `reason` is the reject reason it ends in."""

    def __init__(self, reason: str, message: str):
        super().__init__(message, reason=reason)


@dataclass(frozen=True)
class Placeholder:
    """One listed placeholder: the phrase it must follow and the measured boxes it stands for; `image`
    is the role of the image a described object is placed on (None for an edit region)."""

    ref: str
    phrase: str
    boxes: list[Box]
    image: str | None = None


@dataclass(frozen=True)
class PlaceholderTable:
    """The placeholders of one request: regions per edit in edit order, objects per description."""

    regions: list[list[Placeholder]]  # per edit, in the order of its groundings
    source_objects: list[Placeholder]
    final_objects: list[Placeholder]
    # SOURCE_DESCRIPTION / FINAL_DESCRIPTION -> the description as the request shows it (`described`)
    descriptions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, groundings: list[list[tuple[str, list[Box]]]], placed: dict[str, list[tuple[str, list[Box]]]],
           final_image: str) -> PlaceholderTable:
        """Numbered regions ([R1].. over every edit) and objects ([O1].., the source's then the final's)."""
        regions, count = [], 0
        for edit in groundings:
            regions.append([Placeholder(f"[R{count + i + 1}]", phrase, boxes) for i, (phrase, boxes) in enumerate(edit)])
            count += len(edit)
        source = [Placeholder(f"[O{i + 1}]", phrase, boxes, "source")
                  for i, (phrase, boxes) in enumerate(placed.get("source", []))]
        final = [Placeholder(f"[O{len(source) + i + 1}]", phrase, boxes, final_image)
                 for i, (phrase, boxes) in enumerate(placed.get("final", []))]
        return cls(regions, source, final)

    def described(self, source: str, final: str) -> PlaceholderTable:
        """This table with the two descriptions, each a sentence marked with its objects' placeholders
        (`marked_description`), standing behind SOURCE_DESCRIPTION and FINAL_DESCRIPTION."""
        return replace(self, descriptions={
            SOURCE_DESCRIPTION: marked_description(as_sentence(source), self.source_objects),
            FINAL_DESCRIPTION: marked_description(as_sentence(final), self.final_objects)})

    def all(self) -> dict[str, Placeholder]:
        return {p.ref: p for p in [*(p for edit in self.regions for p in edit), *self.source_objects,
                                   *self.final_objects]}


def listed(placeholders: list[Placeholder]) -> str:
    """How a request lists placeholders: `phrase [R1], phrase [R2]` ("none" when there are none)."""
    return ", ".join(f"{p.phrase} {p.ref}" for p in placeholders) or "none"


def unbracketed(text: str) -> str:
    """Text shown in an in-context request with its square brackets made round, so neither an
    instruction nor a description can pose as a placeholder."""
    return text.replace("[", "(").replace("]", ")")


def marked_description(description: str, objects: list[Placeholder]) -> str:
    """A description as the in-context request shows it: square brackets made round, then each placed
    object's placeholder after the first free occurrence of its phrase (the binding `edit_chain` makes in
    `fields` mode). The pipeline binds the objects, so the LLM never has to find an object's phrase
    again; a phrase the description lacks has no placeholder there."""
    return mark_phrases(unbracketed(description), [(p.phrase, p.ref) for p in objects])


def mark_phrases(text: str, placeholders: list[tuple[str, str]]) -> str:
    """`text` with each (phrase, placeholder)'s placeholder written after the first free occurrence of
    its phrase (longer phrases first), as an answer marks the objects of a description; a phrase not
    in it is left out."""
    out, cursor = [], 0
    for (_, end), index in free_occurrences(text, [phrase for phrase, _ in placeholders]):
        out += [text[cursor:end], " ", placeholders[index][1]]
        cursor = end
    return "".join(out) + text[cursor:]


# Prose an in-context line holds where its pattern leaves it free: no quote, backslash or line break
# (xgrammar compiles a pattern into characters without JSON escapes), no square bracket (no
# placeholder but the ones the pattern spells out can be written) and no colon (no heading either).
_PROSE = r'[^"\\\n\[\]:]'
_BETWEEN_REGIONS = r"(, |,? and )"  # what may join an edit's region phrases
# xgrammar (0.2.8) fails to compile a bounded repetition much over 100 ("{1,200}"); a longer bound is
# left to the answer's checks and `max_tokens`
_MOST_BOUNDED = 100
_SPELLABLE = re.compile(r"[A-Za-z0-9 ,.'()-]*")  # phrases a pattern spells out (anything else: free prose)


def _prose(most: int) -> str:
    return f"{_PROSE}{{1,{most}}}" if most <= _MOST_BOUNDED else f"{_PROSE}+"


def answer_layout(table: PlaceholderTable, multiturn: bool, max_object_chars: int, max_change_chars: int) -> list[str]:
    """One pattern per line of an in-context answer (a regex both Python's `re` and xgrammar read), the
    grammar the answer is constrained to: each line's number and headings, the descriptions by [D1] /
    [D2], and each edit's region part: its phrases, each with its placeholder, in the listed order,
    joined by a comma or "and". The LLM writes the rest (what the edit acts on, how it changes),
    bounded. So under the grammar no layout is broken, no region left unreferenced and no placeholder
    invented; an answer given without it (the oracle, another backend) is still checked
    (`fill_placeholders`)."""
    free = {"source": regex_literal(SOURCE_DESCRIPTION), "target": regex_literal(FINAL_DESCRIPTION),
            "object": _prose(max_object_chars), "change": _prose(max_change_chars)}

    def region(edit: list[Placeholder]) -> str:
        if not all(_SPELLABLE.fullmatch(p.phrase) for p in edit):
            return r'[^"\\\n]+'  # a phrase the pattern cannot spell: free, checked once answered
        # (`listed` says "none" for an edit without a region)
        return _BETWEEN_REGIONS.join(f"{regex_literal(p.phrase)} {regex_literal(p.ref)}" for p in edit) or listed(edit)

    def slot_pattern(slot: str) -> str:
        kind = slot_kind(slot)
        return region(table.regions[slot_step(slot) - 1]) if kind == "region" else free[kind]

    return ["^" + "".join(regex_literal(literal) + (slot_pattern(slot) if slot else "") for literal, slot in layout_pieces(line))
            + "$" for line in edit_layout(len(table.regions), multiturn)]


def check_written(written: str, lines: int, given: tuple[str, ...] = ()) -> str:
    """The answer's text, cleaned line by line, after the checks that need no placeholder table: no
    box written out (unless copied from one of the `given` texts of the request: a description that
    reads like coordinates), `lines` lines numbered 1. to N. (PlaceholderError otherwise). Other `<|...|>`
    tokens (an echoed instruction's) are stripped by the cleaning, as from any model text."""
    tokens = [token for token in find_special_tokens(written) if token in GROUNDING_TOKENS]
    if tokens:
        raise PlaceholderError(INVENTED_BOX, f"the answer writes grounding tokens itself: {tokens[:3]}")
    # split on newlines only: str.splitlines would also split on control characters cleaning drops
    text = "\n".join(line for line in (clean_model_text(raw) for raw in written.split("\n")) if line)
    # checked once cleaned (stripping a token can join "(1,<|x|>2)"); what the request's own texts say
    # is copied, not invented
    for box in _WRITTEN_BOX.finditer(text):
        if not any(box.group(0) in text_given for text_given in given):
            raise PlaceholderError(INVENTED_BOX, f"the answer writes a box itself: {box.group(0)!r}; "
                                                 "name boxes only by the listed placeholders")
    numbers = [int(m.group(1)) if (m := _NUMBERED.match(line)) else None for line in text.split("\n")]
    if numbers != list(range(1, lines + 1)):
        raise PlaceholderError(REFUSED_GOT, f"the GoT must be {lines} lines numbered 1. to {lines}.; "
                                            f"its lines start with {numbers}")
    return text


def expand_descriptions(text: str, descriptions: dict[str, str]) -> str:
    """`text` with each description placeholder it writes replaced by that description (at most once
    each: PlaceholderError otherwise); the objects' placeholders inside are then filled like any other."""
    for ref, description in descriptions.items():
        count = text.count(ref)
        if count > 1:
            raise PlaceholderError(REFUSED_GOT, f"{ref} is written {count} times; it stands for its whole "
                                                "description, once")
        text = text.replace(ref, description)
    return text


def fill_placeholders(written: str, table: PlaceholderTable, lines: int, given: tuple[str, ...] = ()) -> EditGot:
    """The GoT of an in-context answer with the measured boxes in place of its placeholders (`given`:
    the request's texts, see `check_written`)."""
    text = expand_descriptions(check_written(written, lines, given), table.descriptions)
    known = table.all()
    out = GotBuilder()
    cursor, used = 0, []
    for match in _PLACEHOLDER.finditer(text):
        ref = match.group(0)
        placeholder = known.get(ref)
        if placeholder is None:
            raise PlaceholderError(INVENTED_BOX, f"{ref} is not a listed placeholder ({', '.join(known) or 'none'})")
        if ref in used:
            raise PlaceholderError(REFUSED_GOT, f"{ref} is written twice; each placeholder grounds one phrase")
        before = text[cursor:match.start()].rstrip(" ")
        start = len(before) - len(placeholder.phrase)
        if (start < 0 or before[start:].lower() != placeholder.phrase.lower()
                or (start > 0 and (before[start - 1].isalnum() or before[start - 1] == "_"))):
            raise PlaceholderError(REFUSED_GOT, f"{ref} must directly follow its phrase {placeholder.phrase!r}")
        out.text(before[:start])
        if placeholder.image is None:
            out.grounded(before[start:], placeholder.boxes)
        else:
            out.placed_object(before[start:], placeholder.boxes, placeholder.image)
        used.append(ref)
        cursor = match.end()
    out.text(text[cursor:])
    regions = [p.ref for edit in table.regions for p in edit]
    missing = [ref for ref in regions if ref not in used]
    if missing:
        raise PlaceholderError(UNREFERENCED_REGION, f"the edit region {missing[0]} ({known[missing[0]].phrase!r}) "
                                                    "is never referenced; write it after its phrase")
    if [ref for ref in used if ref in regions] != regions:
        raise PlaceholderError(REFUSED_GOT, f"the regions must come in the listed order {regions}")
    return out.render()
