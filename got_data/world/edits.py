"""Edits of the known-answer world: a scene, an instruction, the edited scene, and the true answer.

Each edit kind is a small function from (rng, scene) to an `Edit` or None (when the scene cannot take
it, e.g. no room to add). The true region follows the pipelines' convention: the edited object's box
on the image before the edit, the new object's box after it for an add, the whole image for a global
edit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from got_data.records.boxes import WHOLE_IMAGE, Box
from got_data.records.edits import WHOLE_IMAGE_PHRASE
from got_data.world.scene import (
    BACKGROUNDS,
    CELLS,
    COLORS,
    SHAPES,
    Scene,
    Shape,
    cell_words,
    new_object_kind,
    place_box,
    with_article,
)


@dataclass(frozen=True)
class Edit:
    """One edit with its truth. `obj` is the phrase the instruction names as edited."""

    kind: str  # our own kind name: color, move, add, remove, replace, style, background
    edit_type: str  # the pipelines' edit type vocabulary
    instruction: str
    before: Scene
    after: Scene
    obj: str  # edited phrase, or "the whole image"
    new_object: str = ""  # replace: what takes its place
    region: Box = WHOLE_IMAGE
    object_text: str = ""  # assembly prose: which object, where
    change: str = ""  # assembly prose: how it changes
    crop_before: str = ""  # what the region shows before / after, in a few words
    crop_after: str = ""
    concise: str = ""  # the shortest rewrite of the instruction
    explicit: str = ""  # a longer rewrite


    def crop_text(self, when: str, detailed: bool = False) -> str:
        """What the region shows `when` ("before" / "after"): a few words, or with `detailed` the
        object with its surroundings (as a detailed crop description names them)."""
        text, scene = (self.crop_before, self.before) if when == "before" else (self.crop_after, self.after)
        if not detailed or "background" in text:
            return text
        return f"{text} on a plain {scene.background} background"


def _empty(scene: Scene) -> str:
    return f"empty {scene.background} background"


def _swap(scene: Scene, old: Shape, new: Shape | None) -> Scene:
    if new is None:
        return scene.with_objects([o for o in scene.objects if o != old])
    return scene.with_objects([new if o == old else o for o in scene.objects])


def recolor(rng: random.Random, scene: Scene) -> Edit | None:
    if not scene.objects:
        return None
    obj = rng.choice(scene.objects)
    used = {(o.color, o.shape) for o in scene.objects}
    colors = [c for c in COLORS if (c, obj.shape) not in used]
    color = rng.choice(colors)
    new = replace(obj, color=color)
    place = scene.location(obj)
    return Edit(
        kind="color", edit_type="color", instruction=f"Make the {obj.phrase} {color}.", before=scene,
        after=_swap(scene, obj, new), obj=obj.phrase, region=scene.rel_box(obj),
        object_text=f"The {obj.phrase} {place}.", change=f"It turns {color}.",
        crop_before=with_article(obj.phrase), crop_after=with_article(new.phrase),
        concise=f"{obj.phrase} to {color}", explicit=f"Change the colour of the {obj.phrase} {place} to {color}.",
    )


def move(rng: random.Random, scene: Scene) -> Edit | None:
    if not scene.objects:
        return None
    obj = rng.choice(scene.objects)
    here = scene.location(obj)
    cells = [c for c in CELLS if cell_words(c) != here]
    rng.shuffle(cells)
    others = [o.box for o in scene.objects if o != obj]
    for cell in cells:
        box = place_box(rng, scene.width, scene.height, others + [obj.box], cell=cell, tries=40)
        if box is None:
            continue
        where = cell_words(cell)
        return Edit(
            kind="move", edit_type="other", instruction=f"Move the {obj.phrase} {where}.", before=scene,
            after=_swap(scene, obj, replace(obj, box=box)), obj=obj.phrase, region=scene.rel_box(obj),
            object_text=f"The {obj.phrase} {here}.", change=f"It moves {where}.",
            crop_before=with_article(obj.phrase), crop_after=_empty(scene),
            concise=f"{obj.phrase} {where}", explicit=f"Take the {obj.phrase} {here} and put it {where}.",
        )
    return None


def add(rng: random.Random, scene: Scene) -> Edit | None:
    if len(scene.objects) >= 4:
        return None
    cells = list(CELLS)
    rng.shuffle(cells)
    for cell in cells:
        box = place_box(rng, scene.width, scene.height, [o.box for o in scene.objects], cell=cell, tries=40)
        if box is None:
            continue
        color, shape = new_object_kind(rng, scene)
        new = Shape(color=color, shape=shape, box=box)
        after = scene.with_objects([*scene.objects, new])
        where = cell_words(cell)
        return Edit(
            kind="add", edit_type="add", instruction=f"Add {with_article(new.phrase)} {where}.",
            before=scene, after=after, obj=new.phrase, region=after.rel_box(new),
            object_text=f"The empty spot {where}.", change=f"{with_article(new.phrase).capitalize()} appears there.",
            crop_before=_empty(scene), crop_after=with_article(new.phrase),
            concise=f"add {new.phrase} {where}", explicit=f"Put a new {new.phrase} {where} of the picture.",
        )
    return None


def remove(rng: random.Random, scene: Scene) -> Edit | None:
    if len(scene.objects) < 2:  # an edit that empties the picture teaches nothing
        return None
    obj = rng.choice(scene.objects)
    place = scene.location(obj)
    return Edit(
        kind="remove", edit_type="remove", instruction=f"Remove the {obj.phrase}.", before=scene,
        after=_swap(scene, obj, None), obj=obj.phrase, region=scene.rel_box(obj),
        object_text=f"The {obj.phrase} {place}.", change=f"It disappears, leaving the {scene.background} background.",
        crop_before=with_article(obj.phrase), crop_after=_empty(scene),
        concise=f"remove {obj.phrase}", explicit=f"Delete the {obj.phrase} {place} from the picture.",
    )


def substitute(rng: random.Random, scene: Scene) -> Edit | None:
    if not scene.objects:
        return None
    obj = rng.choice(scene.objects)
    color, shape = new_object_kind(rng, scene)
    while shape == obj.shape:
        shape = rng.choice([s for s in SHAPES if s != obj.shape])
        if (color, shape) in {(o.color, o.shape) for o in scene.objects}:
            color, shape = new_object_kind(rng, scene)
    new = replace(obj, color=color, shape=shape)
    place = scene.location(obj)
    return Edit(
        kind="replace", edit_type="replace", instruction=f"Replace the {obj.phrase} with {with_article(new.phrase)}.",
        before=scene, after=_swap(scene, obj, new), obj=obj.phrase, new_object=new.phrase, region=scene.rel_box(obj),
        object_text=f"The {obj.phrase} {place}.", change=f"It becomes {with_article(new.phrase)}.",
        crop_before=with_article(obj.phrase), crop_after=with_article(new.phrase),
        concise=f"{obj.phrase} to {new.phrase}", explicit=f"Swap the {obj.phrase} {place} for {with_article(new.phrase)}.",
    )


def black_and_white(rng: random.Random, scene: Scene) -> Edit | None:
    if scene.grayscale:
        return None
    return Edit(
        kind="style", edit_type="style", instruction="Turn the picture black and white.", before=scene,
        after=replace(scene, grayscale=True), obj=WHOLE_IMAGE_PHRASE,
        object_text="The whole picture.", change="Every colour turns to gray.",
        crop_before=f"shapes on a {scene.background} background", crop_after="gray shapes",
        concise="black and white", explicit="Redraw the whole picture in black and white.",
    )


def new_background(rng: random.Random, scene: Scene) -> Edit | None:
    color = rng.choice([b for b in BACKGROUNDS if b != scene.background])
    return Edit(
        kind="background", edit_type="background", instruction=f"Make the background {color}.", before=scene,
        after=replace(scene, background=color), obj=WHOLE_IMAGE_PHRASE,
        object_text=f"The {scene.background} background.", change=f"It becomes {color}.",
        crop_before=f"shapes on a {scene.background} background", crop_after=f"shapes on a {color} background",
        concise=f"{color} background", explicit=f"Change the {scene.background} background to {color}.",
    )


EDIT_KINDS: dict[str, Callable[[random.Random, Scene], Edit | None]] = {
    "color": recolor, "move": move, "add": add, "remove": remove, "replace": substitute,
    "style": black_and_white, "background": new_background,
}
# Object edits are what the pipelines localize; global ones are rarer, as in real edit datasets.
KIND_WEIGHTS = {"color": 3, "move": 2, "add": 3, "remove": 2, "replace": 3, "style": 1, "background": 1}


def random_edit(rng: random.Random, scene: Scene, avoid: Collection[str] = frozenset()) -> Edit:
    """One edit that the scene can take, whose edited phrase and instruction are not in `avoid` (so
    every turn of a sequence is told apart by what it names)."""
    kinds = list(KIND_WEIGHTS)
    for _ in range(100):
        kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
        edit = EDIT_KINDS[kind](rng, scene)
        if edit is not None and edit.obj not in avoid and edit.instruction not in avoid:
            return edit
    raise RuntimeError("no edit fits this scene")  # cannot happen: a background change always fits


def combined_instruction(edits: list[Edit]) -> str:
    """A sequence's instructions as one request: "Make the red circle blue, then add a star at the top."."""
    clauses = [e.instruction.rstrip(".") for e in edits]
    return ", then ".join([clauses[0], *(c[:1].lower() + c[1:] for c in clauses[1:])]) + "."


def random_sequence(rng: random.Random, scene: Scene, turns: int) -> list[Edit]:
    """`turns` edits applied one after the other, each on the scene the previous one left."""
    edits: list[Edit] = []
    avoid: set[str] = set()
    for _ in range(turns):
        edit = random_edit(rng, edits[-1].after if edits else scene, avoid)
        avoid |= {edit.obj, edit.instruction, edit.new_object} - {""}
        edits.append(edit)
    return edits
