"""Recaption: the image (and its original caption, if any) -> a concise prompt and a detailed paragraph."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.answer_schemas import RecaptionAnswer, bounded_schema
from got_data.annotate.ask_json import ask_json
from got_data.annotate.model_text import clean_model_text
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.records.codec import strip_special_tokens


class Recaption(Stage):
    name = "recaption"
    role = "vlm"
    reads = ("model_image", "caption")
    writes = ("prompt", "description")

    class Options(StageOptions):
        max_caption_chars: int = Field(2000, gt=0, description="original captions are cut to this before they reach the model")
        max_prompt_chars: int = Field(300, gt=0, description="JSON maxLength of the prompt (keep it reachable within `max_tokens`)")
        max_description_chars: int = Field(1500, gt=0, description="JSON maxLength of the description"
                                                               " (keep it reachable within `max_tokens`)")

    options: Options

    async def run(self, work, models) -> None:
        # The caption is the input's verbatim, untrusted text: the model gets it without tokens or bidi controls.
        caption = strip_special_tokens(work.caption or "").strip()
        answer = await ask_json(
            self, work, models, RecaptionAnswer,
            section="user_with_caption" if caption else "user",
            values={"caption": caption[: self.options.max_caption_chars]}, images=[work.model_image],
            json_schema=bounded_schema(RecaptionAnswer, {"prompt": self.options.max_prompt_chars,
                                                         "description": self.options.max_description_chars}),
        )
        work.prompt = clean_model_text(answer.prompt)
        work.description = clean_model_text(answer.description)
        if not work.prompt or not work.description:
            raise StageReject(self.name, "empty_answer", answer.model_dump_json()[:200])
