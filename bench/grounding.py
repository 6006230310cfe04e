"""Grounding of a world VLM asked directly: the ground stage's own request with the true phrase.

    .venv/bin/python bench/grounding.py [--vlm DIR] [--count 96] [--seed 99] [--objects N]

Answers greedily (transformers, no vLLM) on held-out world scenes at the T2I world spec's pixel
budget and prints, per object count, the mean IoU with the named object and how often the box lands
on the named object rather than another one ("picks", against chance = 1/objects). A model that
boxes *an* object well but ignores the words shows picks at chance (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import os
import random
from collections import defaultdict

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
    os.environ.setdefault(_key, _value)


def main() -> None:
    import torch
    from PIL import Image
    from transformers import Qwen2VLForConditionalGeneration

    from got_data.annotate.gateway import request_messages
    from got_data.annotate.grounding import GroundingParseError, parse_qwen2_vl
    from got_data.annotate.stage import load_prompt_for
    from got_data.engines.prompting import load_tokenizer
    from got_data.families import QWEN2_VL
    from got_data.records.boxes import smart_resize
    from got_data.spec import load_spec
    from got_data.world.checkpoints import world_models
    from got_data.world.oracle import Example
    from got_data.world.scene import random_scene
    from got_data.world.sets import WORLD_SPECS
    from got_data.world.training import Encoded, ExampleEncoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vlm", default=None, help="checkpoint folder (default: the committed world VLM)")
    parser.add_argument("--count", type=int, default=96, help="held-out scenes")
    parser.add_argument("--seed", type=int, default=99, help="scene seed (training used 0)")
    parser.add_argument("--objects", type=int, default=None, help="objects per scene (default 1-4)")
    args = parser.parse_args()

    folder = args.vlm or str(world_models().vlm)
    budget = load_spec(WORLD_SPECS["t2i"]).models["vlm"]
    bounds = {"min_pixels": budget.min_pixels, "max_pixels": budget.max_pixels}
    tokenizer = load_tokenizer(folder)
    model = Qwen2VLForConditionalGeneration.from_pretrained(folder).float().eval()
    encoder = ExampleEncoder(tokenizer, QWEN2_VL, **bounds)
    prompt = load_prompt_for("ground.txt", QWEN2_VL)
    rng = random.Random(args.seed)
    rows: dict[int, list[tuple[float, bool, bool]]] = defaultdict(list)  # objects -> (iou, picked, parsed)
    while sum(map(len, rows.values())) < args.count:
        scene = random_scene(rng, count=args.objects)
        if not scene.objects:
            continue
        target = rng.choice(scene.objects)
        image = scene.render()
        height, width = smart_resize(image.height, image.width, **bounds)
        image = image.resize((width, height), Image.BICUBIC)
        messages = request_messages(*prompt.render(phrase=target.phrase), image_count=1)
        ids = encoder.prompt_ids(Example(stage="ground", key="", messages=messages, images=[image], answer="",
                                         regex=None, json_schema=None))
        length = len(ids)
        batch = encoder.batch([Encoded(stage="ground", input_ids=ids, labels=[-100] * length, images=[image])])
        batch.pop("labels")
        with torch.no_grad():
            answer = tokenizer.decode(model.generate(**batch, max_new_tokens=24, do_sample=False)[0, length:],
                                      skip_special_tokens=True)
        try:
            box = parse_qwen2_vl(answer)[0]
        except GroundingParseError:
            rows[len(scene.objects)].append((0.0, False, False))
            continue
        overlaps = {id(obj): box.iou(scene.rel_box(obj)) for obj in scene.objects}
        picked = max(overlaps.values()) > 0 and overlaps[id(target)] == max(overlaps.values())
        rows[len(scene.objects)].append((overlaps[id(target)], picked, True))

    print(f"grounding asked directly: {folder}, {args.count} scenes, seed {args.seed}, budget {bounds}")
    print(f"{'objects':>8} {'scenes':>7} {'parsed':>7} {'mean IoU':>9} {'IoU>=0.5':>9} {'picks':>6} {'chance':>7}")
    every = [row for objects in sorted(rows) for row in rows[objects]]
    for label, group, chance in [(str(n), rows[n], len(rows[n]) / n) for n in sorted(rows)] + [("all", every, None)]:
        mean = sum(r[0] for r in group) / len(group)
        print(f"{label:>8} {len(group):>7} {sum(r[2] for r in group):>7} {mean:>9.3f} {sum(r[0] >= 0.5 for r in group):>9}"
              f" {sum(r[1] for r in group):>6} {'' if chance is None else f'{chance:.1f}':>7}")


if __name__ == "__main__":
    main()
