"""Entity extraction: the description -> the concrete object phrases it names, each verbatim in it."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.answer_schemas import EntityAnswer, candidate_phrases, entity_schema, verbatim_phrases
from got_data.annotate.ask_json import ask_json
from got_data.annotate.stage import Stage, StageOptions, StageReject


class ExtractEntities(Stage):
    name = "extract_entities"
    role = "llm"
    reads = ("description",)
    writes = ("entities",)

    class Options(StageOptions):
        max_entities: int = Field(12, gt=0, description="at most this many phrases per description")
        max_phrase_words: int = Field(5, gt=0, description="answers are constrained to word runs of the description up to this long")

    options: Options

    async def run(self, work, models) -> None:
        max_entities = self.options.max_entities
        candidates = candidate_phrases(work.description, max_words=self.options.max_phrase_words)
        if not candidates:
            raise StageReject(self.name, "no_entities", "the description has no words")
        answer = await ask_json(self, work, models, EntityAnswer, values={"description": work.description},
                                json_schema=entity_schema(candidates, max_items=max_entities))
        entities = verbatim_phrases(answer.entities, work.description, max_entities)
        if not entities:
            raise StageReject(self.name, "no_entities", answer.model_dump_json()[:200])
        work.entities = entities
