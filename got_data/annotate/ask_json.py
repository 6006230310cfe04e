"""The one way a stage asks a model for a JSON answer: ask, parse into the answer model, and on a bad
answer (unparsable, off its model, or refused by the stage's own check) reject the input, or drop the
optional detail, optionally after asking once more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel

from got_data.annotate.model_text import parse_json_answer
from got_data.annotate.stage import Stage, StageReject

AnswerT = TypeVar("AnswerT", bound=BaseModel)
UNPARSABLE = "unparsable_answer"


class BadAnswer(ValueError):
    """An answer that parsed but that the stage cannot use; the message is the reject detail."""


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
    a bad answer raises StageReject(stage, "model_failure" / "unparsable_answer", detail). `retry`
    asks once more after a bad answer (useful when sampling, or when `check` refuses an answer)."""
    reject = on_bad == "reject"
    for attempt in range(2 if retry else 1):
        text = await models.ask(stage, work, section=section, values=values, images=images, json_schema=json_schema,
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
            detail = str(exc)
        except ValueError:
            detail = text[:200]
    if reject:
        raise StageReject(stage.name, UNPARSABLE, detail_prefix + detail)
    work.dropped.append((dropped_as, UNPARSABLE))
    return None
