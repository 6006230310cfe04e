"""Reinstruction: a few rewrites of each instruction, the first one concise. Shortest-first order is
enforced here, whatever order the model wrote them in. Optional detail: a failed answer leaves the
record without rewrites instead of rejecting the input."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.answer_schemas import ReinstructAnswer, reinstruct_schema
from got_data.annotate.ask_json import ask_json
from got_data.annotate.concurrently import gather_all
from got_data.annotate.model_text import clean_model_text
from got_data.annotate.stage import Stage, StageOptions


class Reinstruct(Stage):
    name = "reinstruct"
    role = "llm"
    reads = ("steps.instruction", "steps.edit_type", "steps.objects")
    writes = ("steps.reinstructions", "dropped")

    class Options(StageOptions):
        count: int = Field(3, gt=0, description="at most this many rewrites per instruction; the shortest is put first")
        max_chars: int = Field(160, gt=0, description="JSON maxLength of each rewrite")

    options: Options

    async def run(self, work, models) -> None:
        await gather_all(self._rewrite(work, models, step) for step in work.steps)

    async def _rewrite(self, work, models, step) -> None:
        answer = await ask_json(
            self, work, models, ReinstructAnswer,
            values={"instruction": step.instruction, "edit_type": step.edit_type or "other",
                    "objects": ", ".join(step.objects)},
            json_schema=reinstruct_schema(self.options.count, self.options.max_chars),
            on_bad="drop", dropped_as="reinstruction",
        )
        if answer is None:
            return
        rewrites: list[str] = []
        for rewrite in answer.rewrites:
            cleaned = clean_model_text(rewrite)
            if cleaned and cleaned.lower() not in {r.lower() for r in rewrites}:
                rewrites.append(cleaned)
        step.reinstructions = sorted(rewrites, key=len)
