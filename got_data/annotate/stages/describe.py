"""Describe: the first and the last image of an edit input (source and target, or source and the
image after the last turn), each in at most `max_sentences` sentences that mention what the edits
touch. The prompt sees that bound as `$sentences` (the real specs' `describe_detailed.txt` asks for a
comprehensive description; the world specs keep the short `describe.txt` their models learned)."""

from __future__ import annotations

import asyncio

from pydantic import Field

from got_data.annotate.answer_schemas import DescriptionAnswer, bounded_schema
from got_data.annotate.ask_json import ask_json
from got_data.annotate.model_text import clean_model_text, first_sentences
from got_data.annotate.stage import Stage, StageOptions, StageReject


def instructions_text(work) -> str:
    """The instruction(s) as a prompt shows them: one line, or numbered lines for several turns."""
    if len(work.steps) == 1:
        return work.steps[0].instruction
    return "\n".join(f"{n}. {step.instruction}" for n, step in enumerate(work.steps, start=1))


class Describe(Stage):
    name = "describe"
    role = "vlm"
    reads = ("first", "last", "steps.instruction", "steps.objects")
    writes = ("source_description", "final_description")

    class Options(StageOptions):
        max_description_chars: int = Field(400, gt=0, description="JSON maxLength of each description"
                                                              " (keep it reachable within `max_tokens`)")
        max_sentences: int = Field(2, gt=0, description="descriptions are cut to this many sentences")

    options: Options

    async def run(self, work, models) -> None:
        objects = ", ".join(dict.fromkeys(p for step in work.steps for p in step.objects))
        values = {"instructions": instructions_text(work), "objects": objects,
                  "sentences": str(self.options.max_sentences)}
        work.source_description, work.final_description = await asyncio.gather(
            self._describe(work, models, "user", work.first, values),
            self._describe(work, models, "user_after", work.last, values),
        )

    async def _describe(self, work, models, section: str, image, values: dict[str, str]) -> str:
        answer = await ask_json(
            self, work, models, DescriptionAnswer, section=section, values=values, images=[image.model_image],
            json_schema=bounded_schema(DescriptionAnswer, {"description": self.options.max_description_chars}),
        )
        description = first_sentences(clean_model_text(answer.description), self.options.max_sentences)
        if not description:
            raise StageReject(self.name, "empty_answer", answer.model_dump_json()[:200])
        return description
