"""Recaption: the image (and its original caption, if any) -> a concise prompt and a detailed paragraph."""

from __future__ import annotations

from got_data.annotate.answers import RecaptionAnswer, bounded_schema
from got_data.annotate.stage import Stage, StageReject
from got_data.annotate.text import clean_model_text, parse_json_answer
from got_data.records.codec import strip_special_tokens


class Recaption(Stage):
    name = "recaption"
    role = "vlm"
    reads = ("image", "caption")
    writes = ("prompt", "description")

    async def run(self, work, models) -> None:
        # The caption is the input's verbatim, untrusted text: the model gets it without tokens or bidi controls.
        caption = strip_special_tokens(work.caption or "").strip()
        max_chars = int(self.option("max_caption_chars", 2000))
        section = "user_with_caption" if caption else "user"
        text = await models.ask(
            self, work, section=section, values={"caption": caption[:max_chars]}, images=[work.model_image],
            json_schema=bounded_schema(RecaptionAnswer, {
                "prompt": self.option("max_prompt_chars", 300),
                "description": self.option("max_description_chars", 1500),
            }),
        )
        try:
            answer = parse_json_answer(RecaptionAnswer, text)
        except ValueError as exc:
            raise StageReject(self.name, "unparsable_answer", f"{exc}: {text[:200]}") from exc
        work.prompt = clean_model_text(answer.prompt)
        work.description = clean_model_text(answer.description)
        if not work.prompt or not work.description:
            raise StageReject(self.name, "empty_answer", text[:200])
