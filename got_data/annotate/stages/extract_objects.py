"""Object extraction for edits: the concrete object phrases each description names (the source
image's and the edited image's), each verbatim in it, so `place_objects` can box every object the
edit GoT names, as the GoT paper appends a position to each object. Optional detail: a failed answer
leaves that description's objects unplaced instead of rejecting the input."""

from __future__ import annotations

import asyncio

from pydantic import Field

from got_data.annotate.answer_schemas import EntityAnswer, candidate_phrases, entity_schema, verbatim_phrases
from got_data.annotate.ask_json import ask_json
from got_data.annotate.stage import Stage, StageOptions


class ExtractObjects(Stage):
    name = "extract_objects"
    role = "llm"
    reads = ("source_description", "final_description")
    writes = ("object_phrases", "dropped")

    class Options(StageOptions):
        enabled: bool = Field(True, description="false: no request is made and edit records place no object besides "
                              "the edit regions (the switch a spec flips for models that never learned the question)")
        max_objects: int = Field(8, gt=0, description="at most this many phrases per description")
        max_phrase_words: int = Field(5, gt=0, description="answers are constrained to word runs of the description up "
                                      "to this long")

    options: Options

    async def run(self, work, models) -> None:
        if not self.options.enabled:
            return
        described = {"source": work.source_description, "final": work.final_description}
        found = await asyncio.gather(*(self._phrases(work, models, which, text) for which, text in described.items()))
        work.object_phrases = {which: phrases for which, phrases in zip(described, found) if phrases}

    async def _phrases(self, work, models, which: str, description: str) -> list[str]:
        candidates = candidate_phrases(description, max_words=self.options.max_phrase_words)
        if not candidates:
            return []
        answer = await ask_json(self, work, models, EntityAnswer, values={"description": description}, tag=which,
                                json_schema=entity_schema(candidates, max_items=self.options.max_objects),
                                on_bad="drop", dropped_as=f"{which} objects")
        return verbatim_phrases(answer.entities, description, self.options.max_objects) if answer is not None else []
