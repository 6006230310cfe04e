"""Describe: the first and the last image of an edit input (source and target, or source and the
image after the last turn), each in at most two sentences that mention what the edits touch."""

from __future__ import annotations

import asyncio

from got_data.annotate.answers import DescriptionAnswer, bounded_schema
from got_data.annotate.stage import Stage, StageReject
from got_data.annotate.text import clean_model_text, first_sentences, parse_json_answer


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

    async def run(self, work, models) -> None:
        objects = ", ".join(dict.fromkeys(p for step in work.steps for p in step.objects))
        values = {"instructions": instructions_text(work), "objects": objects}
        work.source_description, work.final_description = await asyncio.gather(
            self._describe(work, models, "user", work.first, values),
            self._describe(work, models, "user_after", work.last, values),
        )

    async def _describe(self, work, models, section: str, image, values: dict[str, str]) -> str:
        text = await models.ask(
            self, work, section=section, values=values, images=[image.model_image],
            json_schema=bounded_schema(DescriptionAnswer, {"description": self.option("max_description_chars", 400)}),
        )
        try:
            answer = parse_json_answer(DescriptionAnswer, text)
        except ValueError as exc:
            raise StageReject(self.name, "unparsable_answer", text[:200]) from exc
        description = first_sentences(clean_model_text(answer.description), int(self.option("max_sentences", 2)))
        if not description:
            raise StageReject(self.name, "empty_answer", text[:200])
        return description
