"""Edit parse: the instruction -> the edit's type, the phrase(s) naming what it edits and, for a
replace, what takes its place. Phrases are constrained to word runs of the instruction (or "the
whole image", unless the input says the edit is an object edit), so they are the instruction's own
words by construction."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.answer_schemas import EditParseAnswer, candidate_phrases, edit_parse_schema
from got_data.annotate.ask_json import BadAnswer, ask_json
from got_data.annotate.concurrently import gather_all
from got_data.annotate.model_text import clean_model_text
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.records.edits import EDIT_TYPES, GLOBAL_EDIT_TYPES, WHOLE_IMAGE_PHRASE


class EditParse(Stage):
    name = "edit_parse"
    role = "llm"
    reads = ("steps.instruction", "steps.given_edit_type")
    writes = ("steps.edit_type", "steps.objects", "steps.new_object")

    class Options(StageOptions):
        max_instruction_chars: int = Field(500, gt=0, description="instructions are cut to this before they reach the model")
        max_phrase_words: int = Field(6, gt=0, description="object phrases are constrained to word runs of the instruction up to this long")
        max_objects: int = Field(3, gt=0, description="at most this many edited object phrases per edit")

    options: Options

    async def run(self, work, models) -> None:
        await gather_all(self._parse(work, models, n, step) for n, step in enumerate(work.steps, start=1))

    async def _parse(self, work, models, n: int, step) -> None:
        instruction = step.instruction[: self.options.max_instruction_chars]
        candidates = [p for p in candidate_phrases(instruction, max_words=self.options.max_phrase_words)
                      if p != WHOLE_IMAGE_PHRASE]
        if step.given_edit_type in (None, *GLOBAL_EDIT_TYPES):  # a known object edit acts on an object
            candidates.insert(0, WHOLE_IMAGE_PHRASE)
        types = [step.given_edit_type] if step.given_edit_type else list(EDIT_TYPES)

        def known_type(answer: EditParseAnswer) -> None:
            if answer.edit_type not in types:
                raise BadAnswer(f"unknown edit type {answer.edit_type!r}")

        answer = await ask_json(
            self, work, models, EditParseAnswer, section="user_with_type" if step.given_edit_type else "user",
            values={"instruction": instruction, "edit_type": step.given_edit_type or ""},
            json_schema=edit_parse_schema(candidates, types, max_objects=self.options.max_objects),
            check=known_type, detail_prefix=f"edit {n}: ",
        )
        objects: list[str] = []
        for phrase in answer.objects:
            cleaned = clean_model_text(phrase)
            if phrase in candidates and cleaned and cleaned not in objects:
                objects.append(cleaned)
        if not objects:
            raise StageReject(self.name, "no_edit_object", f"edit {n}: {answer.model_dump_json()[:200]}")
        step.edit_type = answer.edit_type
        step.objects = objects
        new_object = clean_model_text(answer.new_object) if answer.new_object in candidates else ""
        step.new_object = new_object if step.edit_type == "replace" and new_object else None
