"""An oracle pool: answers the stages' requests from the world's truth, in each model family's format.

It stands where a `ModelPool` stands (same `generate` and `model_info`), so the real runner, stages,
decode tasks, assembly and shard writer run unchanged on world sets. Two uses:
- the coordinate-path check: a perfect answer must come out of the pipeline with IoU ~1, in either
  family's box convention and at every image size; a conversion bug shows up as a score drop;
- training data for the world's tiny models: every request with its perfect answer (`recorded`).

Boxes are computed here independently of `got_data.records.boxes`: Qwen2.5-VL pixels on the resized
image come from transformers' own `smart_resize` and the true pixel box, not from our converters.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from got_data.annotate.edit_chain import as_sentence, edit_layout
from got_data.annotate.edit_placeholders import FINAL_DESCRIPTION, SOURCE_DESCRIPTION
from got_data.annotate.grounding import (
    ALL_PHRASES_SECTION,
    BOX_END,
    BOX_START,
    OBJECT_REF_END,
    OBJECT_REF_START,
    ONE_BOX_SECTION,
    phrases_of_numbered,
)
from got_data.annotate.verification import parse_crop_tag
from got_data.engines.types import ImageCrop, ModelRequest, ModelResponse
from got_data.errors import CodecError
from got_data.families import QWEN2, QWEN2_VL, family
from got_data.records.boxes import Box
from got_data.spec import PipelineSpec
from got_data.uri import is_remote
from got_data.world.edits import Edit
from got_data.world.scene import Scene, Shape
from got_data.world.sets import edit_from_dict, scene_from_dict

VERIFY_IOU = 0.5  # a box the oracle vouches for covers a true instance at least this well


class OracleError(LookupError):
    """The oracle was asked something its truth does not answer (an input or phrase it does not know)."""


@dataclass
class Example:
    """One request and its perfect answer: a training example for the world's tiny models."""

    stage: str
    key: str  # what was asked (input, stage, section, values): sorting by it fixes the order
    messages: list
    images: list[Image.Image]
    answer: str
    regex: str | None
    json_schema: dict | None
    # objects the answer names, in order, with their relative boxes on the image: where a trained
    # model should look while it writes about each (`world.training.attention_loss`)
    mentions: list[tuple[str, Box]] = field(default_factory=list)


def compact(data: Any) -> str:
    """JSON with no whitespace: what the pools' grammars allow."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


# Answer lengths the short prompts (describe.txt, crop_describe.txt) ask for; a spec asking for more
# (the real specs' detailed prompts) gets the comprehensive answers: every object with its place and the
# background for a description, the region's object and its surroundings for a crop.
SHORT_SENTENCES = 2
SHORT_WORDS = 8


class WorldOracle:
    """Perfect answers for one world set's truth (`read_truth`)."""

    def __init__(self, truth: dict[str, dict], family: str = QWEN2_VL,
                 pixel_bounds: tuple[int | None, int | None] = (None, None), decoys: int | None = None):
        """`decoys`: a seed; every grounding answer then also boxes one wrong place (another object, a
        shifted instance or bare background), so the verify requests that follow see boxes to refuse.
        Only for recording the verify question's training examples: these answers are wrong on purpose."""
        # Parsed once: every input is asked several times (one request per stage, phrase and turn).
        self.truth: dict[str, Scene | list[Edit]] = {
            ref: scene_from_dict(row["scene"]) if row["kind"] == "t2i" else [edit_from_dict(e) for e in row["edits"]]
            for ref, row in truth.items()
        }
        self.family = family
        self.min_pixels, self.max_pixels = pixel_bounds
        self.decoys = decoys

    @property
    def reads_pixels(self) -> bool:
        """Whether its answers depend on the images: an absolute-coordinate family's boxes are in the
        pixels of the image the model sees; a relative family's (0-999) need no image at all."""
        return family(self.family).absolute_boxes

    def answer(self, context: dict, images: list[Any], json_schema: dict | None) -> str:
        """The perfect answer to a request (its `context`); `images` are the request's, which must be
        PIL images when `reads_pixels` (any reference otherwise: they are not looked at)."""
        truth = self.truth.get(context.get("input_ref", ""))
        if truth is None:
            raise OracleError(f"no truth for input {context.get('input_ref')!r}")
        stage, values = context["stage"], context.get("values", {})
        if isinstance(truth, Scene):
            return self._t2i(stage, context, truth, values, images, json_schema)
        return self._edit(stage, context, truth, values, images, json_schema)

    def mentions(self, context: dict) -> list[tuple[str, Box]]:
        """(phrase, relative box) of each object a describing answer names: recaption, describe."""
        truth = self.truth.get(context.get("input_ref", ""))
        stage = context.get("stage")
        if isinstance(truth, Scene) and stage == "recaption":
            scene = truth
        elif isinstance(truth, list) and stage == "describe":
            scene = truth[0].before if context.get("section") == "user" else truth[-1].after
        else:
            return []
        return [(o.phrase, scene.rel_box(o)) for o in scene.objects]

    def _t2i(self, stage: str, context: dict, scene: Scene, values: dict, images: list,
             json_schema: dict | None) -> str:
        if stage == "recaption":
            return compact({"prompt": scene.prompt(), "description": scene.description()})
        if stage == "extract_entities":
            return compact({"entities": scene.phrases()})
        if stage == "ground" and context.get("section") == ALL_PHRASES_SECTION:
            return self.all_phrases_answer(scene, phrases_of_numbered(values["phrases"]), images[0], json_schema)
        if stage == "ground":
            return self.box_answer(scene, values["phrase"], images[0], json_schema, one_box=_one_box(context))
        if stage == "verify" and "prompt" in context:
            return self.reground_answer(scene, values["phrase"], context, images[0], json_schema)
        if stage == "verify":
            return self.verify_answer(scene, values["phrase"], context_box(context))
        raise OracleError(f"the oracle has no T2I answer for stage {stage!r}")

    def _edit(self, stage: str, context: dict, edits: list[Edit], values: dict, images: list,
              json_schema: dict | None) -> str:
        if stage == "describe":
            scene = edits[0].before if context.get("section") == "user" else edits[-1].after
            detailed = int(values.get("sentences", SHORT_SENTENCES)) > SHORT_SENTENCES
            return compact({"description": scene.description() if detailed else scene.summary()})
        if stage == "assemble_edit" and context.get("section", "").startswith("in_context"):
            return in_context_answer([(e.object_text, e.change) for e in edits], values,
                                     multiturn=context["section"] == "in_context_multiturn")
        if stage == "assemble_edit":
            return compact({"steps": [{"object": e.object_text, "change": e.change} for e in edits]})
        if stage == "split_instruction":  # the combined instruction's steps: each edit's own, in order
            return compact({"steps": [e.instruction for e in edits]})
        if stage in ("extract_objects", "place_objects"):  # a description's objects: the source's or the final's
            scene = edits[0].before if context.get("tag") == "source" else edits[-1].after
            if stage == "extract_objects":
                return compact({"entities": scene.phrases()})
            return self.box_answer(scene, values["phrase"], images[0], json_schema, one_box=_one_box(context))
        if stage == "localize":
            edit = _one(edits, lambda e: e.obj == values["phrase"], values["phrase"])
            return self.box_answer(edit.after if edit.kind == "add" else edit.before, edit.obj, images[0], json_schema,
                                   one_box=_one_box(context))
        if stage == "verify_regions":
            edit = _one(edits, lambda e: e.obj == values["phrase"], values["phrase"])
            if "prompt" in context:
                return self.reground_answer(edit.after if edit.kind == "add" else edit.before, edit.obj, context,
                                            images[0], json_schema)
            return self.verify_answer(edit.after if edit.kind == "add" else edit.before, edit.obj, context_box(context))
        edit = _one(edits, lambda e: e.instruction == values["instruction"], values["instruction"])
        if stage == "edit_parse":
            return compact({"edit_type": edit.edit_type, "objects": [edit.obj], "new_object": edit.new_object})
        if stage == "crop_describe":
            detailed = int(values.get("words", SHORT_WORDS)) > SHORT_WORDS
            return compact({"description": edit.crop_text(context.get("tag") or "before", detailed)})
        if stage == "reinstruct":
            count = (json_schema or {}).get("properties", {}).get("rewrites", {}).get("maxItems", 3)
            return compact({"rewrites": [edit.concise, edit.explicit, edit.instruction][:count]})
        raise OracleError(f"the oracle has no edit answer for stage {stage!r}")

    def verify_answer(self, scene: Scene, phrase: str, box: Box) -> str:
        """"yes" when `box` covers an instance of the phrase at IoU >= 0.5, else "no"."""
        return "yes" if any(scene.rel_box(o).iou(box) >= VERIFY_IOU for o in scene.find(phrase)) else "no"

    def all_phrases_answer(self, scene: Scene, phrases: list[str], image: Image.Image, json_schema: dict | None) -> str:
        """Every phrase's instances in one answer, in the order asked: the phrases' own answers one after
        the other, or one JSON list (each phrase's share of the schema's `maxItems`)."""
        if json_schema is None:
            return "".join(self.box_answer(scene, phrase, image) for phrase in phrases)
        share = {"maxItems": json_schema["maxItems"] // len(phrases)}
        return compact([item for phrase in phrases for item in json.loads(self.box_answer(scene, phrase, image, share))])

    def box_answer(self, scene: Scene, phrase: str, image: Image.Image, json_schema: dict | None = None,
                   one_box: bool = False) -> str:
        """Every instance of the phrase, boxed as this family writes it about `image` (the picture the
        model sees), in reading order; no instance is the answer "not there". A JSON schema's
        `maxItems` bounds the list, as it bounds a model. `one_box`: the single-box answer, the first
        instance as a bare box or one JSON object."""
        objects = list(scene.find(phrase))
        if self.decoys is not None and not one_box:
            objects.append(decoy(scene, phrase, self.decoys))
        if one_box and not objects:
            raise OracleError(f"no {phrase!r} in the scene: the single-box answer cannot say so")
        return self._boxes_answer(phrase, [o.box for o in objects], (scene.width, scene.height), image, json_schema,
                                  one_box)

    def reground_answer(self, scene: Scene, phrase: str, context: dict, crop: Image.Image,
                        json_schema: dict | None) -> str:
        """The grounding answer about a verify stage's crop of the box's surroundings: every true instance
        of the phrase visible in the crop (clipped to it), in the crop's coordinates. The crop's place
        comes from the request's tag (`crop_tag`: pixels of the model image and that image's size)."""
        try:
            rect, (width, height) = parse_crop_tag(context.get("tag") or "")
        except ValueError as exc:
            raise OracleError(f"a re-grounding request without its crop: {exc}") from exc
        sx, sy = scene.width / width, scene.height / height  # model image pixels -> the scene's
        left, top, right, bottom = rect[0] * sx, rect[1] * sy, rect[2] * sx, rect[3] * sy
        visible = []
        for obj in scene.find(phrase):
            x1, y1, x2, y2 = max(obj.box[0], left), max(obj.box[1], top), min(obj.box[2], right), min(obj.box[3], bottom)
            if x1 < x2 and y1 < y2:
                visible.append((x1 - left, y1 - top, x2 - left, y2 - top))
        return self._boxes_answer(phrase, visible, (right - left, bottom - top), crop, json_schema)

    def _boxes_answer(self, phrase: str, boxes: list, frame: tuple[float, float], image: Image.Image,
                      json_schema: dict | None = None, one_box: bool = False) -> str:
        """The family's grounding answer naming `boxes`, pixel boxes on a `frame` (width, height) that
        `image` shows whole; boxes too thin to write in the family's coordinates are left out."""
        if json_schema is not None and "maxItems" in json_schema:
            boxes = boxes[: json_schema["maxItems"]]
        frame_w, frame_h = frame
        if family(self.family).absolute_boxes:
            from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
                smart_resize,
            )

            bounds = {k: v for k, v in (("min_pixels", self.min_pixels), ("max_pixels", self.max_pixels)) if v}
            height, width = smart_resize(image.height, image.width, **bounds)
            sx, sy = width / frame_w, height / frame_h
            coords = [[round(b[0] * sx), round(b[1] * sy), round(b[2] * sx), round(b[3] * sy)] for b in boxes]
            items = [{"bbox_2d": c, "label": phrase} for c in coords if c[0] < c[2] and c[1] < c[3]]
            return compact(items[0] if one_box else items)
        spans = []
        for box in boxes:
            x1, y1, x2, y2 = (min(999, round(v * 1000 / size)) for v, size in zip(box, (frame_w, frame_h, frame_w, frame_h)))
            if x1 < x2 and y1 < y2:
                spans.append(f"({x1},{y1}),({x2},{y2})")
        if one_box:
            return spans[0]
        return OBJECT_REF_START + phrase + OBJECT_REF_END + "".join(BOX_START + b + BOX_END for b in spans)


def in_context_answer(prose: list[tuple[str, str]], values: dict, multiturn: bool) -> str:
    """The in-context assembly's answer to a request (its template `values`): the whole numbered GoT
    in the layout of the prompt's worked examples, written from each edit's (object, change) prose
    between the descriptions' placeholders, as the worked examples write it, and each edit's region
    placeholders after their phrases."""
    regions = [line.split("regions:", 1)[1].strip() for line in values["edits"].splitlines()
               if line.strip().startswith("regions:")]
    if len(regions) != len(prose):
        raise OracleError(f"{len(regions)} region listings for {len(prose)} edits")
    slots = {"source": SOURCE_DESCRIPTION, "target": FINAL_DESCRIPTION}
    for n, ((obj, change), region) in enumerate(zip(prose, regions), start=1):
        slots |= {f"object{n}": as_sentence(obj), f"region{n}": region, f"change{n}": as_sentence(change)}
    lines = [line.format_map(slots) for line in edit_layout(len(prose), multiturn)]
    return compact({"got": lines, "changes": [change for _, change in prose]})


def decoy(scene: Scene, phrase: str, seed: int) -> Shape:
    """A wrong box for `phrase`, the same for the same scene and phrase: another object's, one of its
    instances moved off itself (IoU under 0.5), or a patch of background. The choice is seeded by the
    question, not by the order answers are asked in, so recorded examples do not depend on scheduling."""
    rng = random.Random(zlib.crc32(f"{seed}/{scene.width}x{scene.height}/{phrase}/{scene.objects}".encode()))
    others = [o for o in scene.objects if o.phrase != phrase]
    instances = scene.find(phrase)
    pick = rng.random()
    if others and pick < 0.4:
        return rng.choice(others)
    if instances and pick < 0.8:
        x1, y1, x2, y2 = rng.choice(instances).box
        w, h = x2 - x1, y2 - y1
        dx, dy = (rng.choice((-1, 1)) * rng.uniform(0.6, 1.0) * w, rng.choice((-1, 1)) * rng.uniform(0.6, 1.0) * h)
        nx = min(max(0, round(x1 + dx)), scene.width - w)
        ny = min(max(0, round(y1 + dy)), scene.height - h)
        return Shape("decoy", "box", (nx, ny, nx + w, ny + h))
    w, h = (rng.randint(scene.width // 10, scene.width // 4), rng.randint(scene.height // 10, scene.height // 4))
    x, y = rng.randint(0, scene.width - w), rng.randint(0, scene.height - h)
    return Shape("decoy", "box", (x, y, x + w, y + h))


def _one_box(context: dict) -> bool:
    """Whether a grounding request asked the single-box question (`GroundingOptions.answer`)."""
    return context.get("section") == ONE_BOX_SECTION


def context_box(context: dict) -> Box:
    """The box a verify request asks about: its tag, the box in GoT text form."""
    try:
        return Box.parse(context.get("tag") or "")
    except CodecError as exc:
        raise OracleError(f"a verify request without its box: {exc}") from exc


def _one(edits: list[Edit], match, what: str) -> Edit:
    found = [e for e in edits if match(e)]
    if len(found) != 1:
        raise OracleError(f"{len(found)} edits match {what!r}")
    return found[0]


class OraclePool:
    """A stand-in for `ModelPool` that answers from truth; records (request, answer) when asked."""

    RESOLVED_IMAGES = 1024  # object-store images kept resolved: more than a run has in flight (images and crops)

    def __init__(self, role: str, oracle: WorldOracle, record: bool = False):
        self.role = role
        self.oracle = oracle
        self.record = record
        self.recorded: list[Example] = []
        # An input's image comes in a dozen requests (a stage's each phrase, box, turn); fetched once,
        # so the stand-in's own cost stays out of the orchestration figures (bench/driver_ceiling.py).
        self._resolved: OrderedDict[Any, Image.Image] = OrderedDict()

    def model_info(self) -> dict:
        return {"role": self.role, "name": "world-oracle", "family": self.oracle.family if self.role == "vlm" else QWEN2,
                "revision": "truth"}

    async def generate(self, request: ModelRequest) -> ModelResponse:
        # Pixels are fetched only where the answer or the recorded example needs them: a pool's engine
        # fetches them in its own process, and a stand-in fetching them would bill that to the caller.
        if self.record or self.oracle.reads_pixels:
            images = [await self._resolve(image) for image in request.images]
        else:
            images = list(request.images)
        try:
            text = self.oracle.answer(request.context, images, request.json_schema)
        except OracleError as exc:
            return ModelResponse.failure(request.id, f"oracle: {exc}", attempts=1)
        if self.record:
            key = json.dumps(request.context, sort_keys=True, default=str)
            self.recorded.append(Example(stage=request.context["stage"], key=key, messages=request.messages, images=images,
                                         answer=text, regex=request.regex, json_schema=request.json_schema,
                                         mentions=self.oracle.mentions(request.context)))
        # the oracle is sure: its answer's tokens have probability 1
        logprobs = [{text: 0.0}] if request.logprobs else None
        return ModelResponse(id=request.id, ok=True, text=text, finish_reason="stop", prompt_tokens=0,
                             output_tokens=0, latency_s=0.0, attempts=1, logprobs=logprobs)

    async def _resolve(self, image: Any) -> Image.Image:
        import ray

        if isinstance(image, ImageCrop):
            return image.of(await self._resolve(image.image))
        if not isinstance(image, ray.ObjectRef):
            return image
        if image in self._resolved:
            self._resolved.move_to_end(image)
            return self._resolved[image]
        resolved = self._resolved[image] = await image
        if len(self._resolved) > self.RESOLVED_IMAGES:
            self._resolved.popitem(last=False)
        return resolved


def open_world_input(kind: str, path: str | Path) -> Any:
    """The pipeline source for a world set's input (the path `write_world_set` returned)."""
    from got_data.ingest import INPUT_KINDS, open_source

    return open_source(str(path), INPUT_KINDS[kind]())


def annotate_with_oracle(spec: PipelineSpec, kind: str, input_path: str | Path, truth: dict[str, dict],
                         out_dir: str | Path, family: str = QWEN2_VL, record: bool = False,
                         show_progress: bool = False, max_images_in_flight: int | None = None,
                         samples_per_shard: int = 1000, annotators: int | None = None,
                         decoys: int | None = None) -> tuple[dict, list[Example]]:
    """Run the real pipeline on a world set with oracle pools (Ray must be up: decode tasks run there).
    Returns the run's stats and, with `record`, every request with its perfect answer.
    `max_images_in_flight` overrides the runner's default bound (benches lift it); `annotators`
    splits the run over that many annotator actors (each with its copy of the oracle), even one.
    `decoys`: grounding answers also box a wrong place (`WorldOracle`), for verify's training examples."""
    from got_data.annotate.annotators import AnnotatorsRun
    from got_data.annotate.runner import PipelineRun, RunOptions

    vlm = spec.models.get("vlm")
    bounds = (vlm.min_pixels, vlm.max_pixels) if vlm else (None, None)
    oracle = WorldOracle(truth, family=family, pixel_bounds=bounds, decoys=decoys)
    pools: dict[str, OraclePool] = {role: OraclePool(role, oracle, record=record) for role in spec.roles()}
    out = out_dir if is_remote(out_dir) else Path(out_dir)
    options = RunOptions(out_dir=out, show_progress=show_progress, samples_per_shard=samples_per_shard)
    if max_images_in_flight is not None:
        options.max_images_in_flight = max_images_in_flight
    source = open_world_input(kind, input_path)
    if annotators is not None:
        if record:
            raise ValueError("recording examples needs the oracle in this process: annotators=None")
        stats = AnnotatorsRun(spec, source, pools, options, annotators).run()
    else:
        stats = PipelineRun(spec, source, pools, options).run()
    examples = sorted((example for pool in pools.values() for example in pool.recorded), key=lambda e: e.key)
    return stats, examples  # sorted: requests complete in any order, training data must not depend on it
