"""Boxes in the GoT convention and conversions to and from the coordinate systems models use.

GoT boxes are integers in [0, 1000), relative to the image's width and height: Qwen2-VL's grounding
convention. Qwen2.5-VL instead answers in absolute pixels on the image *as its processor resized it*,
so converting back needs that resized size (`smart_resize`).
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict, model_validator

from got_data.errors import CodecError

REL_SCALE = 1000
REL_MAX = REL_SCALE - 1

BOX_TEXT_RE = re.compile(r"\(\s*(\d{1,4})\s*,\s*(\d{1,4})\s*\)\s*,\s*\(\s*(\d{1,4})\s*,\s*(\d{1,4})\s*\)")


class Box(BaseModel):
    """A relative box: integers in [0, 1000), top-left then bottom-right, x1 < x2 and y1 < y2."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x1: int
    y1: int
    x2: int
    y2: int

    @model_validator(mode="after")
    def _check(self) -> "Box":
        if not (0 <= self.x1 <= REL_MAX and 0 <= self.y1 <= REL_MAX and 0 <= self.x2 <= REL_MAX
                and 0 <= self.y2 <= REL_MAX):  # one test on the common path; the loop only to name the fault
            for name in ("x1", "y1", "x2", "y2"):
                value = getattr(self, name)
                if not 0 <= value <= REL_MAX:
                    raise ValueError(f"box {name}={value} is outside [0, {REL_SCALE})")
        if not (self.x1 < self.x2 and self.y1 < self.y2):
            raise ValueError(f"box ({self.x1},{self.y1}),({self.x2},{self.y2}) is empty: need x1 < x2 and y1 < y2")
        return self

    def __eq__(self, other: object) -> bool:
        """Boxes are equal when their corners are (pydantic's generic comparison costs more)."""
        if type(other) is not Box:
            return NotImplemented
        return (self.x1, self.y1, self.x2, self.y2) == (other.x1, other.y1, other.x2, other.y2)

    def __hash__(self) -> int:
        return hash((self.x1, self.y1, self.x2, self.y2))

    def render(self) -> str:
        """The box as GoT text writes it: `(x1,y1),(x2,y2)`."""
        return f"({self.x1},{self.y1}),({self.x2},{self.y2})"

    @classmethod
    def parse(cls, text: str) -> "Box":
        """Parse `(x1,y1),(x2,y2)` (spaces tolerated); raises CodecError when it is not one valid box."""
        match = BOX_TEXT_RE.fullmatch(text.strip())
        if not match:
            raise CodecError(f"not a box: {text!r} (expected '(x1,y1),(x2,y2)')")
        try:
            x1, y1, x2, y2 = map(int, match.groups())
            return cls(x1=x1, y1=y1, x2=x2, y2=y2)
        except ValueError as exc:
            raise CodecError(f"invalid box {text!r}: {exc}") from exc

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x1, self.y1, self.x2, self.y2)

    def area(self) -> int:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def iou(self, other: "Box") -> float:
        ix = max(0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area() + other.area() - inter
        return inter / union if union else 0.0


WHOLE_IMAGE = Box(x1=0, y1=0, x2=REL_MAX, y2=REL_MAX)


def union_box(boxes: list[Box]) -> Box:
    """The smallest box holding all of `boxes` (the region a multi-box edit touches)."""
    return Box(x1=min(b.x1 for b in boxes), y1=min(b.y1 for b in boxes),
               x2=max(b.x2 for b in boxes), y2=max(b.y2 for b in boxes))


def _to_rel(value: float, size: int) -> int:
    return min(REL_MAX, max(0, round(value / size * REL_SCALE)))


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def pixels_to_rel(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    """Pixel box on a width x height image -> relative Box (x_rel = round(x/W*1000), clamped to 999).

    Raises ValueError when the box collapses (x1 >= x2 or y1 >= y2 after rounding).
    """
    _check_size(width, height)
    x1, y1, x2, y2 = box
    return Box(x1=_to_rel(x1, width), y1=_to_rel(y1, height), x2=_to_rel(x2, width), y2=_to_rel(y2, height))


def rel_to_pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Relative Box -> integer pixel box on a width x height image (edges rounded, inside the image)."""
    _check_size(width, height)

    def px(v: int, size: int) -> int:
        return min(size, max(0, round(v / REL_SCALE * size)))

    return (px(box.x1, width), px(box.y1, height), px(box.x2, width), px(box.y2, height))


# Defaults of Qwen2-VL / Qwen2.5-VL image processors.
QWEN_PATCH_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280
QWEN_MAX_RATIO = 200


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_PATCH_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """The (height, width) Qwen2-VL/2.5-VL processors resize an image to.

    Same rule as the processors: each side rounded to a multiple of `factor`, then the whole scaled
    (keeping the aspect ratio) into [min_pixels, max_pixels].
    """
    _check_size(width, height)
    if max(height, width) / min(height, width) > QWEN_MAX_RATIO:
        raise ValueError(f"aspect ratio must be below {QWEN_MAX_RATIO}, got {max(height, width) / min(height, width):.1f}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen25_abs_to_rel(
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> Box:
    """Qwen2.5-VL absolute box (pixels on the processor-resized image) for an original width x height
    image -> relative Box."""
    resized_h, resized_w = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    x1, y1, x2, y2 = (min(max(v, 0), lim) for v, lim in zip(box, (resized_w, resized_h, resized_w, resized_h)))
    return pixels_to_rel((x1, y1, x2, y2), resized_w, resized_h)


def rel_to_qwen25_abs(
    box: Box,
    width: int,
    height: int,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int, int, int]:
    """Relative Box -> the absolute box Qwen2.5-VL would write on its resized copy of the image."""
    resized_h, resized_w = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    return rel_to_pixels(box, resized_w, resized_h)


# Crops of a box (crop_describe, the world vision phase): the Qwen-VL processors refuse very thin images
# and learn nothing from a few pixels, so a crop is widened to a minimum side and a bounded aspect ratio.
MIN_CROP_SIDE = 28
MAX_CROP_ASPECT = 8.0


def _widen(lo: int, hi: int, want: int, limit: int) -> tuple[int, int]:
    """[lo, hi) grown symmetrically to length `want`, kept inside [0, limit)."""
    want = min(want, limit)
    if hi - lo >= want:
        return lo, hi
    lo = max(0, min(lo - (want - (hi - lo)) // 2, limit - want))
    return lo, lo + want


def crop_pixels(box: Box, width: int, height: int, min_side: int = MIN_CROP_SIDE,
                max_aspect: float = MAX_CROP_ASPECT) -> tuple[int, int, int, int]:
    """The pixel rectangle to cut for a relative box on a width x height image."""
    x1, y1, x2, y2 = rel_to_pixels(box, width, height)
    x1, x2 = _widen(x1, max(x2, x1 + 1), min_side, width)
    y1, y2 = _widen(y1, max(y2, y1 + 1), min_side, height)
    w, h = x2 - x1, y2 - y1
    if w > h * max_aspect:
        y1, y2 = _widen(y1, y2, int(w / max_aspect) + 1, height)
    elif h > w * max_aspect:
        x1, x2 = _widen(x1, x2, int(h / max_aspect) + 1, width)
    return x1, y1, x2, y2


def crop_box_to_image(box: Box, rect: tuple[int, int, int, int], width: int, height: int) -> Box:
    """A relative box on the crop `rect` (its pixels on a width x height image) -> the relative box
    on the whole image: where a box a model found on a crop lies in the picture the crop came from.
    Raises ValueError when the box collapses on the image's scale."""
    x1, y1, x2, y2 = rect
    crop_w, crop_h = x2 - x1, y2 - y1
    return pixels_to_rel((x1 + box.x1 / REL_SCALE * crop_w, y1 + box.y1 / REL_SCALE * crop_h,
                          x1 + box.x2 / REL_SCALE * crop_w, y1 + box.y2 / REL_SCALE * crop_h), width, height)
