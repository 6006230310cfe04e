"""The one way a stage asks a model for a JSON answer: ask, parse into the answer model, and on a bad
answer (unparsable, off its model, or refused by the stage's own check) reject the input, or drop the
optional detail, optionally after asking once more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel

from got_data.annotate.model_text import clean_model_text, parse_json_answer
from got_data.annotate.stage import Stage, StageReject

AnswerT = TypeVar("AnswerT", bound=BaseModel)
UNPARSABLE = "unparsable_answer"


class BadAnswer(ValueError):
    """An answer that parsed but that the stage cannot use; the message is the reject detail (and, on a
    retry, what the second request is told was wrong), `reason` the reject reason (default
    `unparsable_answer`)."""

    def __init__(self, message: str, reason: str = UNPARSABLE):
        super().__init__(message)
        self.reason = reason


def failure_note(detail: str) -> str:
    """What a retry request is told about the refused answer (its `$failure` value): without it a
    greedy decoder would write the same answer again."""
    return (f"\nYour previous answer was refused: {clean_model_text(detail)[:300]}. "
            "Write the whole answer again without that mistake.")


@overload
async def ask_json(
    stage: Stage, work: Any, models: Any, answer_model: type[AnswerT], *, values: dict[str, str],
    json_schema: dict[str, Any], images: list[Any] | None = None, section: str = "user", tag: str | None = None,
    check: Callable[[AnswerT], None] | None = None, on_bad: Literal["reject"] = "reject", retry: bool = False,
    detail_prefix: str = "", dropped_as: str = "",
) -> AnswerT: ...


@overload
async def ask_json(
    stage: Stage, work: Any, models: Any, answer_model: type[AnswerT], *, values: dict[str, str],
    json_schema: dict[str, Any], images: list[Any] | None = None, section: str = "user", tag: str | None = None,
    check: Callable[[AnswerT], None] | None = None, on_bad: Literal["drop"], retry: bool = False,
    detail_prefix: str = "", dropped_as: str = "",
) -> AnswerT | None: ...


async def ask_json(
    stage: Stage,
    work: Any,
    models: Any,
    answer_model: type[AnswerT],
    *,
    values: dict[str, str],
    json_schema: dict[str, Any],
    images: list[Any] | None = None,
    section: str = "user",
    tag: str | None = None,
    check: Callable[[AnswerT], None] | None = None,
    on_bad: Literal["reject", "drop"] = "reject",
    retry: bool = False,
    detail_prefix: str = "",
    dropped_as: str = "",
) -> AnswerT | None:
    """The parsed answer, or None when it was dropped (`on_bad="drop"`: a failed request or a bad
    answer adds `(dropped_as, reason)` to `work.dropped`). With `on_bad="reject"` a failed request or
    a bad answer raises StageReject(stage, "model_failure" / the BadAnswer's reason, detail). `retry`
    asks once more after a bad answer (useful when sampling, or when `check` refuses an answer); the
    prompt section may then say what was wrong: `values` gain `failure`, empty on the first request and
    `failure_note(detail)` on the second."""
    reject = on_bad == "reject"
    reason: str | None = None  # a bad answer's reason; None: it did not parse
    note = ""
    for _ in range(2 if retry else 1):
        asked = {**values, "failure": note} if retry else values
        text = await models.ask(stage, work, section=section, values=asked, images=images, json_schema=json_schema,
                                reject_on_failure=reject, tag=tag)
        if text is None:
            work.dropped.append((dropped_as, "model_failure"))
            return None
        try:
            answer = parse_json_answer(answer_model, text)
            if check is not None:
                check(answer)
            return answer
        except BadAnswer as exc:
            reason, detail = exc.reason, str(exc)
        except ValueError:
            reason, detail = None, text[:200]
        note = failure_note(detail)
    if reject:
        raise StageReject(stage.name, reason or UNPARSABLE, detail_prefix + detail)
    work.dropped.append((dropped_as, reason or UNPARSABLE))
    return None
