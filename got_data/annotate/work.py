"""The unit of work that flows through the T2I stages: one input image and what stages add to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from got_data.annotate.stage import Usage
from got_data.ingest.images import PreparedImage
from got_data.ingest.items import InputItem
from got_data.records import T2IRecord, make_key


@dataclass
class T2IWork:
    item: InputItem
    image: PreparedImage
    model_image: Any  # ray.ObjectRef to the RGB PIL image the models see (downscaled to max_pixels)
    model_image_size: tuple[int, int]
    provenance: dict[str, Any]  # the run's static provenance; per-item tokens and times are added here
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    usage: Usage = field(default_factory=Usage)
    prompt: str = ""
    description: str = ""
    entities: list[str] = field(default_factory=list)
    groundings: list[tuple[str, list]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (phrase, why) not in the record
    record: T2IRecord | None = None

    @property
    def caption(self) -> str | None:
        return self.item.caption

    @property
    def key(self) -> str:
        return make_key("t2i", self.item.dataset, self.item.input_ref, self.image.original_sha256)

    def record_fields(self, got: str, objects: list) -> dict[str, Any]:
        provenance = dict(self.provenance)
        provenance["tokens"] = {k: v.model_dump() for k, v in self.usage.by_stage.items()}
        provenance["started_at"] = self.started_at
        provenance["finished_at"] = datetime.now(timezone.utc)
        return {
            "kind": "t2i",
            "key": self.key,
            "source": self.item.source_info(),
            "images": [self.image.image_info("image", self.image.member_ext)],
            "got": got,
            "provenance": provenance,
            "prompt": self.prompt,
            "description": self.description,
            "objects": objects,
        }
