"""Split instruction: a multi-turn input given as one combined instruction -> its ordered single-turn
steps, each then handled by the per-turn stages like a turn of its own.

Only combined inputs are asked (`work.combined_instruction`); a per-turn input passes untouched. Each
step is localized on the latest image there is before it and compared with the earliest one at or
after it: with every intermediate image that is the step's own pair, without them several steps share
the source or the final image. The final image becomes `turnN`, and `step_images` records which steps
have an image. An intermediate image after step K means at least K + 1 steps, so the answer's schema
asks for that many.
"""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.answer_schemas import SplitAnswer, split_schema
from got_data.annotate.ask_json import BadAnswer, ask_json
from got_data.annotate.model_text import clean_model_text
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.annotate.work_items import EditStep
from got_data.ingest.edit_items import FINAL_ROLE

TOO_MANY_STEPS = "too_many_steps"


def step_plan(image_steps: list[int], steps: int) -> list[tuple[int, int]]:
    """For each step 1..steps, (image before, image after) as step numbers of the images there are
    (0 = the source, `steps` = the final image): the latest one before the step, the earliest at or after it."""
    there = sorted({0, *image_steps, steps})
    return [(max(n for n in there if n < step), min(n for n in there if n >= step)) for step in range(1, steps + 1)]


class SplitInstruction(Stage):
    name = "split_instruction"
    role = "llm"
    reads = ("combined_instruction", "images")
    writes = ("steps", "images", "step_images")

    class Options(StageOptions):
        max_steps: int = Field(8, gt=0, description="at most this many steps per combined instruction (the answer's "
                                                   "maxItems; an input whose images need more is rejected)")
        max_step_chars: int = Field(200, gt=0, description="JSON maxLength of each step's instruction")
        max_instruction_chars: int = Field(1000, gt=0, description="combined instructions are cut to this before "
                                                                   "they reach the model")

    options: Options

    async def run(self, work, models) -> None:
        combined = work.combined_instruction
        if combined is None:
            return
        images = dict(work.images)
        given = [int(role.removeprefix("turn")) for role in images if role.startswith("turn")]
        least = max(given, default=0) + 1  # an image after step K: at least K + 1 steps
        if least > self.options.max_steps:
            raise StageReject(self.name, TOO_MANY_STEPS,
                              f"the input has an image after step {least - 1}, more steps than max_steps "
                              f"({self.options.max_steps}) allows")

        def fits(answer: SplitAnswer) -> None:
            cleaned = [clean_model_text(step) for step in answer.steps]
            if not all(cleaned):
                raise BadAnswer(f"a step is empty once cleaned: {answer.model_dump_json()[:200]}")
            if not least <= len(cleaned) <= self.options.max_steps:
                raise BadAnswer(f"{len(cleaned)} step(s); the input's images need {least} to "
                                f"{self.options.max_steps}: {answer.model_dump_json()[:200]}")

        answer = await ask_json(
            self, work, models, SplitAnswer, retry=True, check=fits,
            values={"instruction": combined[: self.options.max_instruction_chars],
                    "max_steps": str(self.options.max_steps)},
            json_schema=split_schema(least, self.options.max_steps, self.options.max_step_chars),
        )
        instructions = [clean_model_text(step) for step in answer.steps]
        count = len(instructions)
        by_step = {0: images["source"], count: images[FINAL_ROLE], **{n: images[f"turn{n}"] for n in given}}
        work.steps = [EditStep(instruction=text, before=by_step[before], after=by_step[after])
                      for text, (before, after) in zip(instructions, step_plan(given, count))]
        work.images = {(f"turn{count}" if role == FINAL_ROLE else role): image for role, image in images.items()}
        work.step_images = [n in given or n == count for n in range(1, count + 1)]
