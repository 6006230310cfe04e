"""Scenes of the known-answer world: a few flat shapes on a plain background, with their true boxes.

Everything about a scene is a pure function of its fields, so the true description, prompt and boxes
never disagree with the pixels. A phrase ("red circle") names every object of its colour and shape:
one in most scenes, several in scenes with repeated objects ("two red circles", `random_scene(...,
repeats=True)`), so grounding is scored per instance. Objects are kept in reading order (top band to
bottom, left to right), so a description's order is learnable.

The whole picture, objects included, carries a strong colour ramp: red rises across, blue rises
down, relative to the image's size. A model of a couple of million parameters has no absolute
position for image tokens otherwise (Qwen2-VL's vision tower uses relative rotary positions only);
with the ramp a patch's own pixels say where it is. A faint ramp on the background alone left box
digits at chance; this one lets the world's tiny VLM learn to ground on a CPU (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from got_data.records.boxes import Box, pixels_to_rel

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "green": (46, 160, 67),
    "blue": (40, 90, 220),
    "yellow": (240, 200, 30),
    "purple": (128, 60, 170),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (236, 236, 236),
    "gray": (190, 190, 190),
    "beige": (230, 214, 180),
}
# Sizes (width, height) the world renders at: squares and both orientations, and some larger than a
# model's pixel budget so the decode downscale and the processor resize both act.
IMAGE_SIZES: tuple[tuple[int, int], ...] = (
    (224, 224), (320, 240), (240, 320), (448, 252), (512, 512), (640, 480), (360, 640), (800, 600),
)
MAX_OBJECTS = 4
RAMP = 200  # position ramp over the whole picture: +-RAMP/2 on the red channel across, on the blue channel down


@dataclass(frozen=True)
class Shape:
    """One object: colour, shape and its pixel box (x1, y1, x2, y2) on the scene."""

    color: str
    shape: str
    box: tuple[int, int, int, int]

    @property
    def phrase(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: str
    objects: tuple[Shape, ...] = field(default_factory=tuple)
    grayscale: bool = False  # a "black and white" style edit was applied

    def rel_box(self, obj: Shape) -> Box:
        return pixels_to_rel(obj.box, self.width, self.height)

    def find(self, phrase: str) -> tuple[Shape, ...]:
        """Every object `phrase` names, in reading order (none, one, or several alike)."""
        return tuple(o for o in self.objects if o.phrase == phrase)

    def with_objects(self, objects: list[Shape]) -> "Scene":
        """The scene holding `objects`, in reading order."""
        return replace(self, objects=tuple(sorted(objects, key=lambda o: reading_order(o.box, self.width, self.height))))

    def render(self) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height), BACKGROUNDS[self.background])
        draw = ImageDraw.Draw(image)
        for obj in self.objects:
            _draw(draw, obj)
        image = Image.fromarray(with_position_ramp(np.asarray(image)))
        if self.grayscale:
            image = image.convert("L").convert("RGB")
        return image

    def label_mask(self) -> Image.Image:
        """Which object each pixel shows: 0 for the background, i for `objects[i - 1]` (an "L" image)."""
        mask = Image.new("L", (self.width, self.height), 0)
        draw = ImageDraw.Draw(mask)
        for index, obj in enumerate(self.objects, start=1):
            _draw(draw, obj, fill=index)
        return mask

    # ---- the true text -----------------------------------------------------------------------

    def location(self, obj: Shape) -> str:
        return location_words(obj.box, self.width, self.height)

    def description(self) -> str:
        """Several sentences: every object with its place, then the background (the T2I paragraph)."""
        sentences = [f"{with_article(o.phrase).capitalize()} is {self.location(o)}." for o in self.objects]
        style = " The picture is black and white." if self.grayscale else ""
        return " ".join(sentences) + f" The background is {self.background}.{style}"

    def summary(self) -> str:
        """One sentence naming every object with its place (the edit pipelines' short description)."""
        parts = [f"{with_article(o.phrase)} {self.location(o)}" for o in self.objects]
        things = _join(parts) if parts else "nothing"
        style = " in black and white" if self.grayscale else ""
        return f"{things.capitalize()} on a {self.background} background{style}."

    def phrases(self) -> list[str]:
        """Each phrase once, in reading order of its first object."""
        return list(dict.fromkeys(o.phrase for o in self.objects))

    def prompt(self) -> str:
        """The concise prompt: the objects ("two red circles" for repeated ones) and the background, no places."""
        names = _join([counted(phrase, len(self.find(phrase))) for phrase in self.phrases()]) or "an empty picture"
        return f"{names} on a {self.background} background"


def with_position_ramp(rgb: np.ndarray) -> np.ndarray:
    """An RGB array with the position ramp added (red across, blue down), clipped to 0-255."""
    height, width = rgb.shape[:2]
    pixels = rgb.astype(np.int16)
    pixels[:, :, 0] += np.round(np.linspace(-RAMP / 2, RAMP / 2, width)).astype(np.int16)[None, :]
    pixels[:, :, 2] += np.round(np.linspace(-RAMP / 2, RAMP / 2, height)).astype(np.int16)[:, None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _grid_cell(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int]:
    """(column, row) of the box centre on the 3x3 grid, each 0, 1 or 2."""
    def third(value: float) -> int:
        return 0 if value < 1 / 3 else 2 if value > 2 / 3 else 1

    return third((box[0] + box[2]) / 2 / width), third((box[1] + box[3]) / 2 / height)


def reading_order(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, float]:
    """Sort key: the 3x3 grid row of the box centre, then its x."""
    return _grid_cell(box, width, height)[1], (box[0] + box[2]) / 2


def location_words(box: tuple[int, int, int, int], width: int, height: int) -> str:
    """Where a box's centre falls on a 3x3 grid: "at the top left", "in the middle", "on the right"."""
    column, row_index = _grid_cell(box, width, height)
    col = ("left", "", "right")[column]
    row = ("top", "", "bottom")[row_index]
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return "in the middle"


def with_article(phrase: str) -> str:
    """"a red circle", "an orange square"."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


NUMBER_WORDS = ("", "one", "two", "three", "four", "five", "six")


def counted(phrase: str, count: int) -> str:
    """"a red circle", "two red circles"."""
    return with_article(phrase) if count == 1 else f"{NUMBER_WORDS[count]} {phrase}s"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _draw(draw: ImageDraw.ImageDraw, obj: Shape, fill: int | tuple[int, int, int] | None = None) -> None:
    x1, y1, x2, y2 = obj.box
    fill = COLORS[obj.color] if fill is None else fill
    if obj.shape == "circle":
        draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)
    elif obj.shape == "diamond":
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        draw.polygon([(cx, y1), (x2 - 1, cy), (cx, y2 - 1), (x1, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}; known: {SHAPES}")


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def place_box(rng: random.Random, width: int, height: int, taken: list[tuple[int, int, int, int]],
              cell: tuple[int, int] | None = None, tries: int = 200) -> tuple[int, int, int, int] | None:
    """A square box of 18-36% of the shorter side that overlaps none of `taken`, its centre in the given
    3x3 grid cell (column, row) when one is asked for; None when there is no room."""
    short = min(width, height)
    gap = max(2, short // 40)
    for _ in range(tries):
        side = int(short * rng.uniform(0.18, 0.36))
        if cell is None:
            x1 = rng.randint(0, width - side)
            y1 = rng.randint(0, height - side)
        else:
            cx = rng.uniform(cell[0] * width / 3 + side / 4, (cell[0] + 1) * width / 3 - side / 4)
            cy = rng.uniform(cell[1] * height / 3 + side / 4, (cell[1] + 1) * height / 3 - side / 4)
            x1 = int(min(max(cx - side / 2, 0), width - side))
            y1 = int(min(max(cy - side / 2, 0), height - side))
        box = (x1, y1, x1 + side, y1 + side)
        if cell is not None and location_words(box, width, height) != cell_words(cell):
            continue
        if not any(_overlaps(box, other, gap) for other in taken):
            return box
    return None


CELLS = [(c, r) for r in range(3) for c in range(3)]


def cell_words(cell: tuple[int, int]) -> str:
    """The location words of a grid cell's centre."""
    return location_words((cell[0] * 2 + 1, cell[1] * 2 + 1, cell[0] * 2 + 1, cell[1] * 2 + 1), 6, 6)


def new_object_kind(rng: random.Random, scene: Scene) -> tuple[str, str]:
    """A (colour, shape) not yet in the scene, so its phrase stays unique."""
    used = {(o.color, o.shape) for o in scene.objects}
    free = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in used]
    return rng.choice(free)


def random_scene(rng: random.Random, size: tuple[int, int] | None = None, count: int | None = None,
                 repeats: bool = False) -> Scene:
    """A scene of `count` (default 1-4) objects with no overlaps. Phrases are unique, unless `repeats`:
    then one colour and shape comes two or three times (default count 2-4, at least that many)."""
    width, height = size or rng.choice(IMAGE_SIZES)
    scene = Scene(width=width, height=height, background=rng.choice(list(BACKGROUNDS)))
    if repeats:
        copies = rng.randint(2, 3)
        want = max(copies, count if count is not None else rng.randint(2, MAX_OBJECTS))
    else:
        copies = 0
        want = count if count is not None else rng.randint(1, MAX_OBJECTS)
    objects: list[Shape] = []
    repeated: tuple[str, str] | None = None
    for n in range(want):
        box = place_box(rng, width, height, [o.box for o in objects])
        if box is None:
            break
        if n < copies and repeated is not None:
            color, shape = repeated
        else:
            color, shape = new_object_kind(rng, scene.with_objects(objects))
            repeated = repeated or (color, shape)
        objects.append(Shape(color=color, shape=shape, box=box))
    return scene.with_objects(objects)
