"""The model families got-data serves, and what differs between them: one home for their names,
whether they see images, how they write boxes, and the `model_type` that identifies a checkpoint.

Pools detect a family from a checkpoint's `config.json`; prompting, grounding and the world oracle
look up how that family is talked to and how it answers. A family is a string enum: it compares
equal to, prints as, and serialises as its name ("qwen2-vl"), as records and specs store it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

BoxCoordinates = Literal["relative_1000", "absolute_resized"]
# How a family answers "where is <phrase>?" with every instance (`annotate/grounding.py`):
# Qwen2-VL repeats `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` spans after one
# `<|object_ref_start|>phrase<|object_ref_end|>` (the reference alone: not there); Qwen2.5-VL writes a
# JSON list of `{"bbox_2d": [x1, y1, x2, y2], "label": phrase}` (the empty list: not there).
GroundingAnswer = Literal["box_spans", "bbox_json_list"]


class UnknownFamilyError(ValueError):
    """A family name or model type got-data does not serve."""


@dataclass(frozen=True)
class _Traits:
    model_type: str  # config.json's model_type
    vision: bool
    # Qwen2-VL writes boxes relative to the image in [0, 1000); Qwen2.5-VL in absolute pixels of the
    # image as its processor resized it (`records.boxes.smart_resize`); a text model writes none.
    box_coordinates: BoxCoordinates | None
    grounding_answer: GroundingAnswer | None


class Family(str, Enum):
    QWEN2_VL = "qwen2-vl"
    QWEN25_VL = "qwen2.5-vl"
    QWEN2 = "qwen2"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)

    @property
    def model_type(self) -> str:
        return _TRAITS[self].model_type

    @property
    def vision(self) -> bool:
        return _TRAITS[self].vision

    @property
    def box_coordinates(self) -> BoxCoordinates | None:
        return _TRAITS[self].box_coordinates

    @property
    def absolute_boxes(self) -> bool:
        """Answers carry absolute pixels of the resized image (else relative [0,1000) or no boxes)."""
        return self.box_coordinates == "absolute_resized"

    @property
    def grounding_answer(self) -> GroundingAnswer | None:
        """The multi-box answer format of a grounding question (None for a text model)."""
        return _TRAITS[self].grounding_answer


_TRAITS = {
    Family.QWEN2_VL: _Traits("qwen2_vl", vision=True, box_coordinates="relative_1000", grounding_answer="box_spans"),
    Family.QWEN25_VL: _Traits("qwen2_5_vl", vision=True, box_coordinates="absolute_resized",
                              grounding_answer="bbox_json_list"),
    Family.QWEN2: _Traits("qwen2", vision=False, box_coordinates=None, grounding_answer=None),
}
QWEN2_VL, QWEN25_VL, QWEN2 = Family.QWEN2_VL, Family.QWEN25_VL, Family.QWEN2
NAMES = tuple(f.value for f in Family)


def family(name: str) -> Family:
    """The family called `name`; raises UnknownFamilyError naming the ones served."""
    try:
        return Family(name)
    except ValueError:
        raise UnknownFamilyError(f"unknown model family {name!r}; expected one of {list(NAMES)}") from None


def family_for_model_type(model_type: object) -> Family:
    for candidate in Family:
        if candidate.model_type == model_type:
            return candidate
    raise UnknownFamilyError(
        f"model_type {model_type!r} is not served; supported: {sorted(f.model_type for f in Family)}")
