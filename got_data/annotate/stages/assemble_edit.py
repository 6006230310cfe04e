"""Edit assembly: the numbered GoT of an edit input (one edit or a sequence), validated as a record.

The LLM writes the prose of each edit (which object, how it changes) as a bounded JSON answer with
exactly one entry per edit; `edit_chain` lays out the steps and inserts the grounded boxes, so the
text's boxes equal the structured boxes by construction and the record model checks the rest.
"""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.answer_schemas import EditChainAnswer, edit_chain_schema
from got_data.annotate.ask_json import BadAnswer, ask_json
from got_data.annotate.edit_chain import ChainStep, multi_turn_got, single_turn_got
from got_data.annotate.model_text import clean_model_text
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.errors import CodecError, RecordError
from got_data.records import parse_record


def edits_text(work) -> str:
    """What the LLM is told about each edit: instruction, type, objects, boxes and crop descriptions."""
    lines = []
    for n, step in enumerate(work.steps, start=1):
        region = "; ".join(f"{p} at {', '.join(b.render() for b in boxes)}" for p, boxes in step.groundings)
        lines.append(f"Edit {n}: {step.instruction}")
        lines.append(f"  type: {step.edit_type or 'other'}; edited: {step.target_object}"
                     + (f"; replaced by: {step.new_object}" if step.new_object else ""))
        lines.append(f"  region: {region}")
        if step.object_description or step.new_object_description:
            lines.append(f"  region before: {step.object_description or 'unknown'}; "
                         f"after: {step.new_object_description or 'unknown'}")
    return "\n".join(lines)


class AssembleEdit(Stage):
    name = "assemble_edit"
    role = "llm"
    reads = ("source_description", "final_description", "steps.instruction", "steps.edit_type", "steps.objects",
             "steps.new_object", "steps.groundings")
    optional_reads = ("steps.object_description", "steps.new_object_description", "placed")
    writes = ("record", "steps.object_text", "steps.change")

    class Options(StageOptions):
        max_object_chars: int = Field(200, gt=0, description="JSON maxLength of the object prose written per edit")
        max_change_chars: int = Field(240, gt=0, description="JSON maxLength of the change prose written per edit"
                                                         " (`max_tokens` must cover one pair per turn)")

    options: Options

    async def run(self, work, models) -> None:
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
            fields = work.record_fields(got.text)
            if got.objects:
                fields["objects"] = got.objects
            work.record = parse_record(fields)
        except (RecordError, CodecError) as exc:
            raise StageReject("validate", "schema", str(exc)) from exc
