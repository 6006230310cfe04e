"""What edit sources yield: one EditItem per edit pair (single-turn) or edit sequence (multi-turn).

An EditItem is a source image and an ordered list of turns (instruction, image after the turn);
a single-turn pair is the one-turn case whose image plays the record role `target`. Like InputItem,
it holds only lazy image handles, and an input that cannot be used before any image is read (a
missing target, an empty instruction, no turns) still becomes an item, with `problem` set, so it
lands in the rejects table instead of vanishing.

Edit types are free text in the datasets (OmniEdit task names, SEED-Edit labels, our folder
layout); `normalize_edit_type` maps them onto one vocabulary the stages and records share.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from got_data.ingest.items import ImageSource
from got_data.records.codec import strip_special_tokens
from got_data.records.models import SourceInfo

# Reasons an edit item can carry in `problem`, on top of the image ones in items.py.
EMPTY_INSTRUCTION = "empty_instruction"
NO_TURNS = "no_turns"
# The role of a combined input's final image until its instruction is split (then it is `turnN`).
FINAL_ROLE = "final"


# Checked in this order, so "background swap" is a background edit, not a replace.
_EDIT_TYPE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("background", ("background", "backdrop", "scene", "environment")),
    ("style", ("style", "stylize", "stylization", "artistic", "painting")),
    ("weather", ("weather", "season", "snow", "rain", "fog")),
    ("lighting", ("lighting", "light", "illumination", "relight", "relighting", "time of day")),
    ("expression", ("expression", "emotion", "face", "facial")),
    ("color", ("color", "colour", "recolor", "recolour")),
    ("attribute", ("attribute", "material", "texture", "property", "modification", "modify", "shape")),
    ("add", ("add", "addition", "insert", "insertion")),
    ("remove", ("remove", "removal", "delete", "deletion", "erase")),
    ("replace", ("replace", "replacement", "swap", "substitute", "substitution", "change object")),
)
_WORDS = re.compile(r"[a-z]+")


def normalize_edit_type(value: object) -> str | None:
    """One of EDIT_TYPES for a dataset's edit-type label ("object_swap" -> "replace"); None when no
    label was given; "other" for a label we cannot place."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(_WORDS.findall(value.lower().replace("_", " ")))
    for edit_type, words in _EDIT_TYPE_WORDS:
        if any(re.search(rf"\b{re.escape(word)}\b", text) for word in words):
            return edit_type
    return "other"


def clean_instruction(text: str) -> str:
    """The instruction as a model and a record may see it: control tokens removed, whitespace folded.

    The verbatim text stays in the record's `source.original_caption`.
    """
    return " ".join(strip_special_tokens(text).split())


@dataclass(frozen=True)
class EditTurn:
    """One edit: the instruction (verbatim), the image after it, and its type when the input says."""

    instruction: str
    image: ImageSource
    edit_type: str | None = None


@dataclass(frozen=True)
class CombinedSteps:
    """A multi-turn input whose steps come as one instruction: the final image and the intermediate
    images that exist, each keyed by the step it follows (1 = the image after the first step).

    How many steps there are is only known once `split_instruction` has split the instruction.
    """

    instruction: str  # verbatim
    final: ImageSource
    intermediates: tuple[tuple[int, ImageSource], ...] = ()  # (step it follows, image), steps ascending

    def __post_init__(self) -> None:
        steps = [step for step, _ in self.intermediates]
        if steps != sorted(set(steps)) or any(step < 1 for step in steps):
            raise ValueError(f"intermediate images must follow distinct steps >= 1, in order; got {steps}")


@dataclass(frozen=True)
class EditItem:
    """One edit input: a source image and its turns, in order.

    `multiturn` picks the record roles: False -> `source`, `target` (exactly one turn);
    True -> `source`, `turn1`..`turnN`. A multi-turn input given as one instruction has `combined`
    and no turns: its roles are `source`, `turnK` per intermediate image and `final` (which becomes
    `turnN` once the instruction is split into N steps). `problem` is (reason, detail) for inputs that
    cannot be processed at all; `source` may be None and `turns` empty only then.
    """

    input_ref: str
    dataset: str
    source: ImageSource | None
    turns: tuple[EditTurn, ...] = ()
    multiturn: bool = False
    instruction_error: str | None = None
    problem: tuple[str, str] | None = None
    raw_instructions: tuple[str, ...] = ()  # verbatim, also for items with a problem (shown in rejects)
    combined: CombinedSteps | None = None

    def __post_init__(self) -> None:
        if self.problem is None:
            if self.source is None or not (self.turns or self.combined):
                raise ValueError(f"input {self.input_ref}: an edit item without images must say why (problem)")
            if not self.multiturn and len(self.turns) != 1:
                raise ValueError(f"input {self.input_ref}: a single-turn edit has exactly one turn")
            if self.combined is not None and (self.turns or not self.multiturn):
                raise ValueError(f"input {self.input_ref}: a combined instruction is a multi-turn input without turns")

    def roles(self) -> list[str]:
        """Record roles of the item's images, in order (a combined input's last is `final`)."""
        if not self.multiturn:
            return ["source", "target"]
        if self.combined is not None:
            return ["source", *(f"turn{step}" for step, _ in self.combined.intermediates), FINAL_ROLE]
        return ["source"] + [f"turn{i + 1}" for i in range(len(self.turns))]

    def image_sources(self) -> dict[str, ImageSource]:
        """The images to decode for this input, by record role."""
        if self.problem is not None or self.source is None:
            return {}
        if self.combined is not None:
            later = [image for _, image in self.combined.intermediates] + [self.combined.final]
            return dict(zip(self.roles(), [self.source, *later]))
        return dict(zip(self.roles(), [self.source] + [turn.image for turn in self.turns]))

    @property
    def instructions(self) -> list[str]:
        if self.combined is not None:
            return [self.combined.instruction]
        return [turn.instruction for turn in self.turns] or list(self.raw_instructions)

    def source_info(self) -> SourceInfo:
        """The record's `source` block: the instruction verbatim (multi-turn: a JSON list of them)."""
        texts = self.instructions
        original = (texts[0] if texts else None) if not self.multiturn else json.dumps(texts, ensure_ascii=False)
        return SourceInfo(dataset=self.dataset, input_ref=self.input_ref, original_caption=original)


def edit_problem(
    dataset: str, input_ref: str, reason: str, detail: str, multiturn: bool = False,
    instructions: tuple[str, ...] = (),
) -> EditItem:
    """An edit item that is rejected before any image is read."""
    return EditItem(input_ref=input_ref, dataset=dataset, source=None, multiturn=multiturn, problem=(reason, detail),
                    raw_instructions=instructions)
