"""Edit assembly: the numbered GoT of an edit input (one edit or a sequence), validated as a record.

Two modes (`mode`). `fields`: the LLM writes the prose of each edit (which object, how it changes) as
a bounded JSON answer with exactly one entry per edit; `edit_chain` lays out the steps and inserts the
grounded boxes. `in_context` (the GoT paper's assembly): prompted with worked examples, the LLM writes
the whole numbered GoT, line by line, naming each measured region by a listed placeholder and each
description, shown with its placed objects' placeholders already in place, by its own placeholder
([D1], [D2]); the grammar holds the layout, the descriptions' and the regions' placeholders
(`answer_layout`), and the LLM writes the prose between;
`edit_placeholders` checks the answer and substitutes the measured boxes, and a failed answer (or one
the record model refuses) is asked again once, then rejected. Either way the text's boxes are the
measured boxes by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from got_data.annotate.answer_schemas import (
    EditChainAnswer,
    InContextGotAnswer,
    edit_chain_schema,
    in_context_got_schema,
)
from got_data.annotate.ask_json import BadAnswer, ask_json
from got_data.annotate.edit_chain import ChainStep, EditGot, multi_turn_got, single_turn_got
from got_data.annotate.edit_placeholders import (
    FINAL_DESCRIPTION,
    REFUSED_GOT,
    SOURCE_DESCRIPTION,
    PlaceholderTable,
    answer_layout,
    fill_placeholders,
    listed,
    unbracketed,
)
from got_data.annotate.model_text import clean_model_text
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.errors import CodecError, RecordError
from got_data.records import parse_record


def edits_text(work) -> str:
    """What the LLM is told about each edit: instruction, type, objects, boxes and crop descriptions."""
    lines = []
    for n, step in enumerate(work.steps, start=1):
        region = "; ".join(f"{p} at {', '.join(b.render() for b in boxes)}" for p, boxes in step.groundings)
        lines += _edit_lines(n, step, f"  region: {region}", lambda text: text)
    return "\n".join(lines)


def in_context_edits_text(work, table: PlaceholderTable) -> str:
    """What the in-context request says about each edit: no box, only the placeholders of its regions;
    untrusted text has its square brackets made round, so it cannot pose as a placeholder."""
    lines = []
    for n, (step, regions) in enumerate(zip(work.steps, table.regions), start=1):
        lines += _edit_lines(n, step, f"  regions: {listed(regions)}", unbracketed)
    return "\n".join(lines)


def _edit_lines(n: int, step, region_line: str, clean: Callable[[str], str]) -> list[str]:
    """One edit's lines in both requests; `clean` is applied to the untrusted texts the in-context
    request must keep free of placeholders (the fields request's wording is what the world LLM learned)."""
    lines = [f"Edit {n}: {clean(step.instruction)}",
             f"  type: {step.edit_type or 'other'}; edited: {step.target_object}"
             + (f"; replaced by: {step.new_object}" if step.new_object else ""),
             region_line]
    if step.object_description or step.new_object_description:
        lines.append(f"  region before: {clean(step.object_description or 'unknown')}; "
                     f"after: {clean(step.new_object_description or 'unknown')}")
    return lines


class AssembleEdit(Stage):
    name = "assemble_edit"
    role = "llm"
    reads = ("source_description", "final_description", "steps.instruction", "steps.edit_type", "steps.objects",
             "steps.new_object", "steps.groundings")
    optional_reads = ("steps.object_description", "steps.new_object_description", "placed")
    writes = ("record", "steps.object_text", "steps.change")

    class Options(StageOptions):
        mode: Literal["fields", "in_context"] = Field(
            "fields", description="`fields`: the LLM writes each edit's prose, a fixed layout holds it; `in_context`: "
            "prompted with worked examples, it writes the whole numbered GoT with placeholders for the measured "
            "boxes (checked, asked again once, else rejected: docs/REJECTS.md)")
        max_object_chars: int = Field(200, gt=0, description="most characters of the object prose written per edit "
                                                            "(JSON maxLength; `in_context`: in its line's pattern)")
        max_change_chars: int = Field(240, gt=0, description="most characters of the change prose written per edit"
                                                         " (JSON maxLength; `in_context`: in its line's pattern "
                                                         "too); `max_tokens` must cover one pair per turn")
        max_got_chars: int = Field(4000, gt=0, description="`in_context`: most characters of the GoT's lines "
                                                          "together, checked once answered (`max_tokens` must "
                                                          "cover it)")

    options: Options

    @classmethod
    def prompt_sections(cls, options: Options) -> tuple[str, ...]:
        if options.mode == "in_context":
            return ("in_context", "in_context_multiturn")
        return ("user", "user_multiturn")

    async def run(self, work, models) -> None:
        if self.options.mode == "in_context":
            work.record = await self._in_context(work, models)
            return
        await self._fields(work, models)

    async def _fields(self, work, models) -> None:
        def one_step_per_edit(answer: EditChainAnswer) -> None:
            if len(answer.steps) != len(work.steps):
                raise BadAnswer(f"{len(answer.steps)} steps for {len(work.steps)} edits")

        answer = await ask_json(
            self, work, models, EditChainAnswer, section="user" if len(work.steps) == 1 else "user_multiturn",
            values={"source_description": work.source_description, "final_description": work.final_description,
                    "edits": edits_text(work), "count": str(len(work.steps))},
            json_schema=edit_chain_schema(len(work.steps), self.options.max_object_chars,
                                          self.options.max_change_chars),
            check=one_step_per_edit,
        )
        chain = []
        for step, written in zip(work.steps, answer.steps):
            step.object_text, step.change = clean_model_text(written.object), clean_model_text(written.change)
            if not step.object_text or not step.change:
                raise StageReject(self.name, "empty_answer", answer.model_dump_json()[:200])
            chain.append(ChainStep(object_text=step.object_text, groundings=step.groundings, change=step.change))
        try:
            if work.kind == "edit":
                got = single_turn_got(work.source_description, chain[0], work.final_description, work.placed)
            else:
                got = multi_turn_got(work.source_description, chain, work.final_description, work.placed)
            work.record = self._record(work, got)
        except (RecordError, CodecError) as exc:
            raise StageReject("validate", "schema", str(exc)) from exc

    async def _in_context(self, work, models):
        """The record of an in-context answer; each answer is checked and built as a record inside
        `ask_json`'s check, so a failure of either is retried once and then rejected with its reason."""
        final_image = "target" if work.kind == "edit" else f"turn{len(work.steps)}"
        table = PlaceholderTable.of([step.groundings for step in work.steps], work.placed, final_image).described(
            work.source_description, work.final_description)
        layout = answer_layout(table, work.kind != "edit", self.options.max_object_chars, self.options.max_change_chars)
        values = {"source_description": table.descriptions[SOURCE_DESCRIPTION],
                  "final_description": table.descriptions[FINAL_DESCRIPTION],
                  "edits": in_context_edits_text(work, table), "count": str(len(work.steps))}
        built = []

        def build(answer: InContextGotAnswer) -> None:
            written = answer.text()
            if len(written) > self.options.max_got_chars:
                raise BadAnswer(f"the GoT is {len(written)} characters, more than {self.options.max_got_chars}",
                                reason=REFUSED_GOT)
            changes = [clean_model_text(change) for change in answer.changes]
            if len(changes) != len(work.steps) or not all(changes):
                raise BadAnswer(f"{len(changes)} changes for {len(work.steps)} edits, each a non-empty sentence",
                                reason=REFUSED_GOT)
            got = fill_placeholders(written, table, len(layout), given=(values["source_description"],
                                                                    values["final_description"], values["edits"]))
            for step, change in zip(work.steps, changes):
                step.change = change
            try:
                built.append(self._record(work, got))
            except (RecordError, CodecError) as exc:
                raise BadAnswer(f"the record refuses the GoT: {exc}", reason=REFUSED_GOT) from exc

        await ask_json(
            self, work, models, InContextGotAnswer,
            section="in_context" if work.kind == "edit" else "in_context_multiturn",
            values=values,
            json_schema=in_context_got_schema(layout, len(work.steps), self.options.max_change_chars),
            check=build, retry=True,
        )
        return built[-1]

    @staticmethod
    def _record(work, got: EditGot):
        fields = work.record_fields(got.text)
        if got.objects:
            fields["objects"] = got.objects
        return parse_record(fields)
