"""Reinstruction: a few rewrites of each instruction, the first one concise. Shortest-first order is
enforced here, whatever order the model wrote them in. Optional detail: a failed answer leaves the
record without rewrites instead of rejecting the input."""

from __future__ import annotations

import asyncio

from got_data.annotate.answers import ReinstructAnswer, reinstruct_schema
from got_data.annotate.stage import Stage
from got_data.annotate.text import clean_model_text, parse_json_answer


class Reinstruct(Stage):
    name = "reinstruct"
    role = "llm"
    reads = ("steps.instruction", "steps.edit_type", "steps.objects")
    writes = ("steps.reinstructions", "dropped")

    async def run(self, work, models) -> None:
        await asyncio.gather(*(self._rewrite(work, models, step) for step in work.steps))

    async def _rewrite(self, work, models, step) -> None:
        text = await models.ask(
            self, work,
            values={"instruction": step.instruction, "edit_type": step.edit_type or "other",
                    "objects": ", ".join(step.objects)},
            json_schema=reinstruct_schema(int(self.option("count", 3)), int(self.option("max_chars", 160))),
            reject_on_failure=False,
        )
        if text is None:
            work.dropped.append(("reinstruction", "model_failure"))
            return
        try:
            answer = parse_json_answer(ReinstructAnswer, text)
        except ValueError:
            work.dropped.append(("reinstruction", "unparsable_answer"))
            return
        rewrites: list[str] = []
        for rewrite in answer.rewrites:
            cleaned = clean_model_text(rewrite)
            if cleaned and cleaned.lower() not in {r.lower() for r in rewrites}:
                rewrites.append(cleaned)
        step.reinstructions = sorted(rewrites, key=len)
