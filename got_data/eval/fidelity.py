"""Fidelity: how well an annotation run's GoT records say what the world set's images show.

Records are matched to truth by `source.input_ref`; an input with no record (rejected) counts as
missing everything, so a pipeline cannot score well by rejecting its hard inputs.

- t2i: object recall/precision (a GoT object matches the true objects whose colour and shape its
  phrase names), mean IoU of matched boxes, share of true objects found with IoU >= 0.5, instance
  recall and precision at IoU 0.5 (each true object needs a box of its own: "two red circles" need
  two), and word accuracy of the prompt and the description;
- edit / multiturn: per edit, IoU of the region (union of the record's boxes) with the true region,
  edited-object accuracy (the record's target names the true object), edit-type accuracy; for
  multiturn also the share of inputs whose record has the right number of steps (exact count) and
  whose steps are in the true order (each step's instruction is closest, in words, to the true step
  at its place), with the mean word accuracy of the steps' instructions: what splitting a combined
  instruction gets right (a per-turn input is given its steps); and the lengths the records
  reached (words and sentences of the source and final descriptions, words of the crop descriptions);
  for records that place the other objects their GoT names (schema 1.1), the mean IoU of those boxes
  with the true objects of the image each is placed on, beside the region IoU, and the share placed.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from got_data.errors import InputError
from got_data.records.boxes import Box, union_box
from got_data.shards.reader import iter_samples
from got_data.world.sets import read_truth

IOU_HIT = 0.5
_WORDS = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def word_accuracy(predicted: str, truth: str) -> float:
    """Words of `truth` matched in order in `predicted`, over the longer of the two (1.0 = same words)."""
    a, b = words(predicted), words(truth)
    if not a and not b:
        return 1.0
    matched = sum(block.size for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks())
    return matched / max(len(a), len(b))


def names_object(predicted: str, phrase: str) -> bool:
    """Whether predicted text names the true phrase ("the red circle" names "red circle")."""
    return f" {' '.join(words(phrase))} " in f" {' '.join(words(predicted))} "


def _box(values: list[int]) -> Box:
    x1, y1, x2, y2 = values
    return Box(x1=x1, y1=y1, x2=x2, y2=y2)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def match_instances(predicted: list[Box], truth: list[Box], iou_hit: float = IOU_HIT) -> int:
    """How many true boxes a distinct predicted box covers at IoU >= iou_hit (greedy, best pairs first)."""
    pairs = sorted(((p.iou(t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)), reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    for iou, i, j in pairs:
        if iou < iou_hit:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_t)


def score_t2i(records: dict[str, Any], truth: dict[str, dict]) -> dict[str, Any]:
    """Objects per phrase (a GoT object matches the true objects its phrase names; with repeated
    objects one GoT object answers for all of them) and instances per box (each true object needs
    its own box at IoU >= 0.5: instance recall over true objects, precision over every GoT box)."""
    true_objects = predicted_objects = matched = matched_predicted = hits = 0
    predicted_boxes = instance_hits = 0
    ious, prompt_acc, description_acc = [], [], []
    for ref, row in truth.items():
        scene = row["scene"]
        true_objects += len(scene["objects"])
        record = records.get(ref)
        if record is None:
            prompt_acc.append(0.0)
            description_acc.append(0.0)
            continue
        prompt_acc.append(word_accuracy(record.prompt, scene["prompt"]))
        description_acc.append(word_accuracy(record.description, scene["description"]))
        predicted_objects += len(record.objects)
        predicted_boxes += sum(len(o.boxes) for o in record.objects)
        by_phrase: dict[str, list[Box]] = {}
        for obj in scene["objects"]:
            by_phrase.setdefault(obj["phrase"], []).append(_box(obj["rel_box"]))
        used: set[int] = set()
        for phrase, truth_boxes in by_phrase.items():
            candidates = {i: [max(b.iou(t) for b in o.boxes) for t in truth_boxes] for i, o in enumerate(record.objects)
                          if i not in used and names_object(o.phrase, phrase)}
            if not candidates:
                continue
            best = max(candidates, key=lambda i: sum(candidates[i]))
            used.add(best)
            matched_predicted += 1
            matched += len(truth_boxes)
            ious.extend(candidates[best])
            hits += sum(iou >= IOU_HIT for iou in candidates[best])
            instance_hits += match_instances(list(record.objects[best].boxes), truth_boxes)
    return {
        "inputs": len(truth), "records": sum(ref in records for ref in truth),
        "true_objects": true_objects, "predicted_objects": predicted_objects, "predicted_boxes": predicted_boxes,
        "object_recall": matched / true_objects if true_objects else None,
        "object_precision": matched_predicted / predicted_objects if predicted_objects else None,
        "mean_iou": _mean(ious), "iou50_share": hits / true_objects if true_objects else None,
        "instance_recall": instance_hits / true_objects if true_objects else None,
        "instance_precision": instance_hits / predicted_boxes if predicted_boxes else None,
        "prompt_word_accuracy": _mean(prompt_acc), "description_word_accuracy": _mean(description_acc),
    }


def sentence_count(text: str) -> int:
    return len(_SENTENCE_END.findall(text.strip() + " ")) or 1


def description_lengths(records: list[Any]) -> dict[str, float | None]:
    """Mean words and sentences of the records' source and final descriptions, and mean words of their
    crop descriptions (the lengths `describe` / `crop_describe` reached, beside the paper's)."""
    texts = [text for r in records
             for text in (r.source_description, r.target_description if r.kind == "edit" else r.final_description)]
    crops = [text for r in records for op in (r.steps if r.kind == "multiturn" else [r.edit])
             for text in (op.object_description, op.new_object_description) if text]
    return {"description_words": _mean([len(words(t)) for t in texts]),
            "description_sentences": _mean([sentence_count(t) for t in texts]),
            "crop_description_words": _mean([len(words(t)) for t in crops])}


def scene_of_image(true_edits: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    """The true scene an edit record's image role shows: source, target (single-turn) or turnN."""
    if role == "source":
        return true_edits[0]["before"]
    turn = 1 if role == "target" else int(role[4:]) if role.startswith("turn") and role[4:].isdigit() else 0
    return true_edits[turn - 1]["after"] if 1 <= turn <= len(true_edits) else None


def placed_object_scores(records: dict[str, Any], truth: dict[str, dict]) -> dict[str, Any]:
    """Scores of the objects edit records place besides their regions (schema 1.1 `objects`): each
    placed object matched by phrase to a true object of the scene its image shows; mean IoU of the
    matched boxes (a placed object naming nothing there scores 0), and the share of the scenes' true
    objects placed. None when no record placed any."""
    ious: list[float] = []
    placed_true = total_true = 0
    for ref, row in truth.items():
        record = records.get(ref)
        if record is None or not record.objects:
            continue
        roles = {obj.image for obj in record.objects}
        for role in roles:
            scene = scene_of_image(row["edits"], role)
            if scene is None:
                continue
            found = set()
            for obj in (o for o in record.objects if o.image == role):
                match = next((t for t in scene["objects"] if names_object(obj.phrase, t["phrase"])), None)
                ious.append(union_box(obj.boxes).iou(_box(match["rel_box"])) if match else 0.0)
                if match:
                    found.add(match["phrase"])
            placed_true += len(found)
            total_true += len(scene["objects"])
    return {"placed_object_mean_iou": _mean(ious),
            "placed_object_recall": placed_true / total_true if total_true else None}


def in_true_order(instructions: list[str], true_instructions: list[str]) -> bool:
    """Whether there are as many steps as true ones and each step's instruction is closest (word
    accuracy) to the true instruction at its own place."""
    if len(instructions) != len(true_instructions):
        return False
    for n, text in enumerate(instructions):
        accuracies = [word_accuracy(text, truth) for truth in true_instructions]
        if accuracies.index(max(accuracies)) != n:
            return False
    return True


def step_scores(records: dict[str, Any], truth: dict[str, dict]) -> dict[str, Any]:
    """Step count and order of multi-turn records against the true edits; missing records score 0."""
    right_count = right_order = 0
    accuracies: list[float] = []
    for ref, row in truth.items():
        true_instructions = [edit["instruction"] for edit in row["edits"]]
        record = records.get(ref)
        instructions = list(record.instructions) if record is not None else []
        right_count += len(instructions) == len(true_instructions)
        right_order += in_true_order(instructions, true_instructions)
        accuracies += [word_accuracy(instructions[n], text) if n < len(instructions) else 0.0
                       for n, text in enumerate(true_instructions)]
    return {"step_count_accuracy": right_count / len(truth) if truth else None,
            "step_order_accuracy": right_order / len(truth) if truth else None,
            "step_instruction_word_accuracy": _mean(accuracies),
            "combined_inputs": sum(bool(row.get("combined")) for row in truth.values())}


def score_edits(records: dict[str, Any], truth: dict[str, dict], multiturn: bool) -> dict[str, Any]:
    edits = hits = right_object = right_type = 0
    iou_values: list[float] = []
    for ref, row in truth.items():
        true_edits = row["edits"]
        edits += len(true_edits)
        record = records.get(ref)
        if record is None:
            continue
        ops = record.steps if multiturn else [record.edit]
        for op, edit in zip(ops, true_edits):
            iou = union_box(op.regions).iou(_box(edit["region"]))
            iou_values.append(iou)
            hits += iou >= IOU_HIT
            right_object += names_object(op.target_object, edit["obj"])
            right_type += op.edit_type == edit["edit_type"]
    ious = _mean(iou_values)
    scores = {
        "inputs": len(truth), "records": sum(ref in records for ref in truth), "edits": edits,
        "region_mean_iou": ious, "region_iou50_share": hits / edits if edits else None,
        "object_accuracy": right_object / edits if edits else None,
        "edit_type_accuracy": right_type / edits if edits else None,
        **description_lengths([records[ref] for ref in truth if ref in records]),
        **placed_object_scores(records, truth),
    }
    if multiturn:
        scores.update(step_scores(records, truth))
    return scores


def score_run(out_dir: str | Path, truth_path: str | Path) -> dict[str, Any]:
    """Scores of one annotation output folder against a world set's truth."""
    out_dir = Path(out_dir)
    truth = read_truth(truth_path)
    if not truth:
        raise InputError(f"the truth at {truth_path} is empty")
    kinds = {row["kind"] for row in truth.values()}
    if len(kinds) != 1:
        raise InputError(f"the truth at {truth_path} mixes kinds {sorted(kinds)}; score one world set at a time")
    kind = kinds.pop()
    shards = sorted(out_dir.glob("*.tar"))
    if not shards and not (out_dir / "stats.json").is_file():
        raise InputError(f"{out_dir} holds no shards: point at the folder `got-data annotate` wrote")
    records = {s.record.source.input_ref: s.record for s in iter_samples(shards)} if shards else {}
    stray = [r for r in records.values() if r.kind != kind]
    if stray:
        raise InputError(f"{out_dir} holds {stray[0].kind} records but the truth is a {kind} world set")
    scores = score_t2i(records, truth) if kind == "t2i" else score_edits(records, truth, kind == "multiturn")
    return {"kind": kind, "out_dir": str(out_dir), **scores}


def write_scores(scores: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
