"""Recaption: the image (and its original caption, if any) -> a concise prompt and a detailed paragraph."""

from __future__ import annotations

from pydantic import ValidationError

from got_data.annotate.answers import RecaptionAnswer
from got_data.annotate.stage import Stage, StageReject
from got_data.annotate.text import clean_model_text


class Recaption(Stage):
    name = "recaption"
    role = "vlm"
    reads = ("image", "caption")
    writes = ("prompt", "description")

    async def run(self, work, models) -> None:
        caption = (work.caption or "").strip()
        max_chars = int(self.option("max_caption_chars", 2000))
        section = "user_with_caption" if caption else "user"
        text = await models.ask(
            self, work, section=section, values={"caption": caption[:max_chars]}, images=[work.model_image],
            json_schema=RecaptionAnswer.model_json_schema(),
        )
        try:
            answer = RecaptionAnswer.model_validate_json(text)
        except ValidationError as exc:
            raise StageReject(self.name, "unparsable_answer", f"{exc.error_count()} error(s): {text[:200]}") from exc
        work.prompt = clean_model_text(answer.prompt)
        work.description = clean_model_text(answer.description)
        if not work.prompt or not work.description:
            raise StageReject(self.name, "empty_answer", text[:200])
