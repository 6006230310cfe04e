"""The text of an edit GoT: numbered steps whose region boxes are inserted from the structured boxes.

The assembling LLM writes only prose (which object, how it changes); this module lays the steps out
and grounds each edited phrase with `render_got`, so the boxes in the text are the record's boxes by
construction. Every piece is cleaned model text, so no piece can smuggle a grounding token in.

Single-turn (the GoT paper's five steps):
    1. Source image: ...   2. Edited object: ...   3. Edit region: <ref>phrase</ref><box>...</box>
    4. Change: ...   5. Edited image: ...
Multi-turn: 1. Source image, then one step per turn (object, region, change), then the final image.

The objects the descriptions name (placed by the `place_objects` stage) are grounded in the
description lines, at the first free occurrence of each phrase (longer phrases first), and become
the record's `objects`, each on the image its description is about.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from string import Formatter

from got_data.annotate.model_text import free_occurrences
from got_data.records import Annotation, Box, PlacedObject, render_got

# Objects each description names, with their boxes: "source" (the source image's description) and
# "final" (the edited image's, or the last turn's)
DescribedObjects = dict[str, list[tuple[str, list[Box]]]]


def edit_layout(steps: int, multiturn: bool) -> list[str]:
    """The numbered lines of an edit GoT as templates whose slots are `{source}`, `{target}` and, per
    edit n, `{objectN}`, `{regionN}`, `{changeN}`. The one home of the layout: the fields writer (below),
    the in-context grammar (`edit_placeholders.answer_layout`) and the world oracle's in-context answer
    all spell their lines from it."""
    if not multiturn:
        return ["1. Source image: {source}", "2. Edited object: {object1}", "3. Edit region: {region1}.",
                "4. Change: {change1}", "5. Edited image: {target}"]
    return ["1. Source image: {source}",
            *(f"{n + 1}. Edit {n}: {{object{n}}} Region: {{region{n}}}. Change: {{change{n}}}" for n in range(1, steps + 1)),
            f"{steps + 2}. Final image: {{target}}"]


def layout_pieces(template: str) -> Iterator[tuple[str, str | None]]:
    """A layout line's (literal text, slot or None) pieces in order."""
    for literal, slot, _, _ in Formatter().parse(template):
        yield literal, slot


def slot_kind(slot: str) -> str:
    """What a slot holds: "object3" -> "object"."""
    return slot.rstrip("0123456789")


def slot_step(slot: str) -> int:
    """Which edit a per-edit slot belongs to (1-based): "region2" -> 2."""
    return int(slot[len(slot_kind(slot)):])


@dataclass(frozen=True)
class ChainStep:
    """One edit as the chain writes it: prose, and the grounded phrases of its region in box order."""

    object_text: str
    groundings: list[tuple[str, list[Box]]]
    change: str


@dataclass(frozen=True)
class EditGot:
    """An edit GoT's text and the objects its descriptions ground (none when nothing was placed)."""

    text: str
    objects: list[PlacedObject] = field(default_factory=list)


class GotBuilder:
    """Plain text plus annotations, appended piece by piece: the one way an edit GoT is rendered, from
    the fields layout here or from an in-context answer's placeholders (`edit_placeholders`)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.annotations: list[Annotation] = []
        self.placed: list[tuple[int, str]] = []  # (annotation index, image role) of each described object

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

    def placed_object(self, phrase: str, boxes: list[Box], image: str) -> None:
        """A phrase naming an object of a description, grounded and kept as a record object on `image`."""
        self.placed.append((len(self.annotations), image))
        self.grounded(phrase, boxes)

    def described(self, text: str, objects: list[tuple[str, list[Box]]], image: str) -> None:
        """`text` with each object grounded at the first free occurrence of its phrase (longer phrases
        first, so "red sofa" claims its words before "sofa"); a phrase that does not occur is left out."""
        cursor = 0
        for (start, end), index in free_occurrences(text, [phrase for phrase, _ in objects]):
            self.text(text[cursor:start])
            self.placed_object(text[start:end], objects[index][1], image)
            cursor = end
        self.text(text[cursor:])

    def render(self) -> EditGot:
        got, spans = render_got("".join(self.parts), self.annotations)
        objects = [PlacedObject(phrase=got[spans[i][0]:spans[i][1]], boxes=list(self.annotations[i].boxes), span=spans[i],
                                image=image) for i, image in self.placed]
        return EditGot(got, objects)


def as_sentence(text: str) -> str:
    """Text ending as a sentence does (a full stop added when it has no end mark)."""
    return text if text.endswith((".", "!", "?")) else text + "."


def single_turn_got(source_description: str, step: ChainStep, target_description: str,
                    objects: DescribedObjects | None = None) -> EditGot:
    return _layout_got(source_description, [step], target_description, objects, multiturn=False)


def multi_turn_got(source_description: str, steps: list[ChainStep], final_description: str,
                   objects: DescribedObjects | None = None) -> EditGot:
    return _layout_got(source_description, steps, final_description, objects, multiturn=True)


def _layout_got(source_description: str, steps: list[ChainStep], final_description: str,
                objects: DescribedObjects | None, multiturn: bool) -> EditGot:
    objects = objects or {}
    out = GotBuilder()
    final_role = f"turn{len(steps)}" if multiturn else "target"
    for n, line in enumerate(edit_layout(len(steps), multiturn)):
        if n:
            out.text("\n")
        for literal, slot in layout_pieces(line):
            out.text(literal)
            if slot == "source":
                out.described(as_sentence(source_description), objects.get("source", []), "source")
            elif slot == "target":
                out.described(as_sentence(final_description), objects.get("final", []), final_role)
            elif slot is not None:
                step, kind = steps[slot_step(slot) - 1], slot_kind(slot)
                if kind == "region":
                    out.region(step.groundings)
                else:
                    out.text(as_sentence(step.object_text if kind == "object" else step.change))
    return out.render()
