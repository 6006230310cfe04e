"""The text of an edit GoT: numbered steps whose region boxes are inserted from the structured boxes.

The assembling LLM writes only prose (which object, how it changes); this module lays the steps out
and grounds each edited phrase with `render_got`, so the boxes in the text are the record's boxes by
construction. Every piece is cleaned model text, so no piece can smuggle a grounding token in.

Single-turn (the GoT paper's five steps):
    1. Source image: ...   2. Edited object: ...   3. Edit region: <ref>phrase</ref><box>...</box>
    4. Change: ...   5. Edited image: ...
Multi-turn: 1. Source image, then one step per turn (object, region, change), then the final image.
"""

from __future__ import annotations

from dataclasses import dataclass

from got_data.records import Annotation, Box, render_got


@dataclass(frozen=True)
class ChainStep:
    """One edit as the chain writes it: prose, and the grounded phrases of its region in box order."""

    object_text: str
    groundings: list[tuple[str, list[Box]]]
    change: str


class _Builder:
    """Plain text plus annotations, appended piece by piece."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.annotations: list[Annotation] = []

    def text(self, piece: str) -> None:
        self.parts.append(piece)
        self.length += len(piece)

    def grounded(self, phrase: str, boxes: list[Box]) -> None:
        self.annotations.append(Annotation(self.length, self.length + len(phrase), tuple(boxes)))
        self.text(phrase)

    def region(self, groundings: list[tuple[str, list[Box]]]) -> None:
        for i, (phrase, boxes) in enumerate(groundings):
            if i:
                self.text(", ")
            self.grounded(phrase, boxes)

    def render(self) -> str:
        got, _ = render_got("".join(self.parts), self.annotations)
        return got


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def single_turn_got(source_description: str, step: ChainStep, target_description: str) -> str:
    out = _Builder()
    out.text(f"1. Source image: {_sentence(source_description)}\n")
    out.text(f"2. Edited object: {_sentence(step.object_text)}\n")
    out.text("3. Edit region: ")
    out.region(step.groundings)
    out.text(f".\n4. Change: {_sentence(step.change)}\n")
    out.text(f"5. Edited image: {_sentence(target_description)}")
    return out.render()


def multi_turn_got(source_description: str, steps: list[ChainStep], final_description: str) -> str:
    out = _Builder()
    out.text(f"1. Source image: {_sentence(source_description)}\n")
    for n, step in enumerate(steps, start=1):
        out.text(f"{n + 1}. Edit {n}: {_sentence(step.object_text)} Region: ")
        out.region(step.groundings)
        out.text(f". Change: {_sentence(step.change)}\n")
    out.text(f"{len(steps) + 2}. Final image: {_sentence(final_description)}")
    return out.render()
