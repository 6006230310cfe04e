"""Assembly: the description with each grounded phrase annotated inline (first free occurrence), as a
validated T2I record. Near-duplicate boxes of one phrase are merged first; each box keeps its
verification score when the verify stage ran."""

from __future__ import annotations

from pydantic import Field

from got_data.annotate.grounding import distinct_box_indices
from got_data.annotate.model_text import find_free_occurrence
from got_data.annotate.stage import Stage, StageOptions, StageReject
from got_data.errors import RecordError
from got_data.records import Annotation, GroundedObject, parse_record, render_got


class AssembleT2I(Stage):
    name = "assemble"
    reads = ("description", "groundings")
    optional_reads = ("box_scores",)
    writes = ("record", "dropped")

    class Options(StageOptions):
        merge_iou: float = Field(0.85, gt=0, le=1, description="boxes of one phrase overlapping more than this are merged")

    options: Options

    async def run(self, work, models) -> None:
        merge_iou = self.options.merge_iou
        scored = work.box_scores if work.box_scores is not None else [None] * len(work.groundings)
        placed: list[tuple[Annotation, list[float] | None]] = []
        taken: list[tuple[int, int]] = []
        # Longer phrases first, so "the red car" claims its words before "car" does.
        for (phrase, boxes), scores in sorted(zip(work.groundings, scored), key=lambda g: -len(g[0][0])):
            span = find_free_occurrence(work.description, phrase, taken)
            if span is None:
                work.dropped.append((phrase, "phrase_not_found"))
                continue
            taken.append(span)
            distinct = distinct_box_indices(boxes, merge_iou)
            placed.append((Annotation(span[0], span[1], tuple(boxes[n] for n in distinct)),
                           None if scores is None else [scores[n] for n in distinct]))
        if not placed:
            raise StageReject(self.name, "no_grounded_object", "no grounded phrase occurs in the description")
        placed.sort(key=lambda p: p[0].start)
        got, spans = render_got(work.description, [a for a, _ in placed])
        objects = [
            GroundedObject(phrase=got[s:e], boxes=list(a.boxes), span=(s, e), box_scores=scores)
            for (a, scores), (s, e) in zip(placed, spans)
        ]
        try:
            work.record = parse_record(work.record_fields(got=got, objects=objects))
        except RecordError as exc:
            raise StageReject("validate", "schema", str(exc)) from exc
