"""Entity extraction: the description -> the concrete object phrases it names, each verbatim in it."""

from __future__ import annotations

import json

from got_data.annotate.answers import candidate_phrases, entity_schema
from got_data.annotate.stage import Stage, StageReject


class ExtractEntities(Stage):
    name = "extract_entities"
    role = "llm"
    reads = ("description",)
    writes = ("entities",)

    async def run(self, work, models) -> None:
        max_entities = int(self.option("max_entities", 12))
        candidates = candidate_phrases(work.description, max_words=int(self.option("max_phrase_words", 5)))
        if not candidates:
            raise StageReject(self.name, "no_entities", "the description has no words")
        text = await models.ask(
            self, work, values={"description": work.description},
            json_schema=entity_schema(candidates, max_items=max_entities),
        )
        try:
            raw = json.loads(text, strict=False)["entities"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise StageReject(self.name, "unparsable_answer", text[:200]) from exc
        entities: list[str] = []
        for phrase in raw if isinstance(raw, list) else []:
            if isinstance(phrase, str) and phrase.strip() and phrase in work.description and phrase not in entities:
                entities.append(phrase)
        if not entities:
            raise StageReject(self.name, "no_entities", text[:200])
        work.entities = entities[:max_entities]
