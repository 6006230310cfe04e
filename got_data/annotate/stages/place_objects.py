"""Placing the objects the edit descriptions name: each phrase `extract_objects` found grounded on
the image its description is about (the source image, or the edited / last turn's image), in the
grounding stages' own answer format. A phrase without a box is dropped alone; the edit regions stay
the localize stage's."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.concurrently import gather_all
from got_data.annotate.stage import Stage
from got_data.annotate.stages.ground import GroundingOptions, ground_phrase, grounding_sections
from got_data.records import Box


class PlaceObjectsOptions(GroundingOptions):
    enabled: bool = Field(True, description="false: no request is made and no object is placed")


class PlaceObjects(Stage):
    name = "place_objects"
    role = "vlm"
    reads = ("object_phrases", "first", "last")
    writes = ("placed", "dropped")

    Options = PlaceObjectsOptions
    options: PlaceObjectsOptions

    @classmethod
    def prompt_sections(cls, options: PlaceObjectsOptions) -> tuple[str, ...]:
        return grounding_sections(options) if options.enabled else ()

    async def run(self, work, models) -> None:
        if not self.options.enabled:
            return
        images = {"source": work.first, "final": work.last}
        asked = [(which, phrase) for which, phrases in work.object_phrases.items() for phrase in phrases]
        boxes = await gather_all(ground_phrase(self, work, models, phrase, images[which].model_image,
                                               images[which].model_size, tag=which) for which, phrase in asked)
        placed: dict[str, list[tuple[str, list[Box]]]] = {}
        for (which, phrase), found in zip(asked, boxes):
            if found:
                placed.setdefault(which, []).append((phrase, found))
        work.placed = placed
