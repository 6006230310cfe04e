"""Fidelity of every pipeline on the known-answer world. Prints a table and writes fidelity.json.

    .venv/bin/python bench/fidelity.py [--count 48] [--seeds 1000 ...] [--sets ...] [--out out/bench-fidelity]
                                       [--vlm DIR --llm DIR]   (default: the committed world models)

1. Coordinate paths: each pipeline answered by the world oracle (perfect answers, every instance) in
   both box conventions, Qwen2-VL relative and Qwen2.5-VL absolute-on-resized, over all world image sizes: the
   scores must be ~1; a conversion bug shows as a drop here.
2. The trained tiny world models in real vLLM pools (CPU) on held-out world sets (a seed the
   training never used): the fidelity they reach.

Beside the three kinds' sets, a multiturn set whose sequences come as one combined instruction (some
intermediate images dropped; `multiturn-combined`) is scored for the split's step count and order, and a
t2i set whose scenes repeat an object ("two red circles") is scored per instance: instance recall and
precision at IoU 0.5. The t2i sets run with the verify stage off and on (the world specs have it on):
answered by the oracle, by the world models verifying themselves, and by the world models with the
oracle verifying (what verification gains on their boxes when the verifier is right); with its cost in
requests and seconds per record. The t2i sets also ground all of an image's phrases in one request
(`requests: per_image`), by the oracle and (with `--per-image`) by the world models, beside one request
per phrase: requests and prefill tokens of the ground stage per input, from the same run.
With `--reground`, the t2i sets also run verify with re-grounding on (each kept box grounded again on
its surroundings): by the oracle in both box conventions, and by the world models, re-grounding
themselves and with the oracle verifying and re-grounding.

    .venv/bin/python bench/fidelity.py --sets t2i t2i-repeats --count 96 --seeds 1000 1001
    .venv/bin/python bench/fidelity.py --sets t2i t2i-repeats --count 24 --reground [--oracle-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

from got_data.world.sets import NAMED_SETS  # noqa: E402  (after the environment it reads)

T2I_COLUMNS = ("object_recall", "object_precision", "mean_iou", "iou50_share", "instance_recall", "instance_precision",
               "prompt_word_accuracy", "description_word_accuracy")
COST_COLUMNS = ("verify_requests_per_record", "ground_requests_per_input", "ground_prefill_per_input",
                "seconds_per_record")
EDIT_COLUMNS = ("region_mean_iou", "region_iou50_share", "object_accuracy", "edit_type_accuracy", "step_count_accuracy",
                "step_order_accuracy", "step_instruction_word_accuracy", "placed_object_mean_iou", "placed_object_recall")


def with_verify(spec, enabled: bool, reground: bool = False):
    """The spec with its verify stage switched on or off, re-grounding each kept box or not."""
    for stage in spec.stages:
        if stage.name in ("verify", "verify_regions"):
            stage.options.update({"enabled": enabled, "reground": reground})
    return spec


def with_ground_requests(spec, requests: str):
    """The spec grounding one request per phrase (`per_phrase`) or all of an image's phrases at once."""
    for stage in spec.stages:
        if stage.name == "ground":
            stage.options["requests"] = requests
    return spec


class VerifyFromTruth:
    """The VLM pool, except that the verify question is answered by the oracle: how much verification
    gains on a real model's boxes when the verifier is right (an upper bound until the world VLM learns it)."""

    def __init__(self, pool, oracle_pool):
        self.pool, self.oracle_pool = pool, oracle_pool

    async def generate(self, request):
        verify = request.context.get("stage") in ("verify", "verify_regions")
        return await (self.oracle_pool if verify else self.pool).generate(request)

    def __getattr__(self, name):
        return getattr(self.pool, name)


def other_assembly(spec) -> str:
    """The edit assembly mode the spec does not use: the world models answer both."""
    mode = next(stage.options.get("mode", "fields") for stage in spec.stages if stage.name == "assemble_edit")
    return "fields" if mode == "in_context" else "in_context"


def cost(out: Path, seconds: float) -> dict:
    """The cost of verification and the run's seconds per record; the ground stage's requests and
    prefill tokens per input (every input is grounded, records or not)."""
    run = json.loads((out / "stats.json").read_text())["run"]
    records, inputs = max(run["records"], 1), max(run["inputs_seen"], 1)
    stages = run["tokens_per_stage"]
    return {"verify_requests_per_record": stages.get("verify", {}).get("requests", 0) / records,
            "ground_requests_per_input": stages.get("ground", {}).get("requests", 0) / inputs,
            "ground_prefill_per_input": stages.get("ground", {}).get("prompt_tokens", 0) / inputs,
            "seconds_per_record": seconds / records, "rejects_by_reason": run["rejects_by_reason"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48, help="inputs per world set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000], help="world seeds (training used 0)")
    parser.add_argument("--sets", nargs="+", default=list(NAMED_SETS), choices=list(NAMED_SETS), help="which world sets")
    parser.add_argument("--out", type=Path, default=Path("out/bench-fidelity"))
    parser.add_argument("--vlm", default=None)
    parser.add_argument("--llm", default=None)
    parser.add_argument("--reground", action="store_true",
                        help="t2i sets: also verify with re-grounding on (oracle; world models with the oracle verifying)")
    parser.add_argument("--per-image", action="store_true",
                        help="t2i sets: the world models also ground all of an image's phrases in one request")
    parser.add_argument("--oracle-only", action="store_true", help="only the oracle's passes (no vLLM, minutes not hours)")
    args = parser.parse_args()

    from rich.console import Console

    from got_data.eval.fidelity import score_run
    from got_data.eval.world_run import annotate_and_score, start_world_pools
    from got_data.families import QWEN2_VL, QWEN25_VL
    from got_data.local_ray import start_local_ray
    from got_data.spec import load_spec
    from got_data.world.checkpoints import world_models
    from got_data.world.oracle import OraclePool, WorldOracle, annotate_with_oracle
    from got_data.world.sets import WORLD_SPECS, read_truth, write_named_set
    from got_data.world.training import with_assembly

    console = Console()
    shutil.rmtree(args.out, ignore_errors=True)
    models = world_models()
    vlm, llm = args.vlm or models.vlm, args.llm or models.llm
    rows: list[tuple[str, str, dict]] = []
    runs = [(name, seed) for seed in args.seeds for name in args.sets]
    sets = {(name, seed): write_named_set(args.out / f"{name}-{seed}-set", name, args.count, seed) for name, seed in runs}
    start_local_ray(max(os.cpu_count() or 1, 4), 500 * 1024**2)
    for name, seed in runs:
        kind, truth_dir = NAMED_SETS[name][0], args.out / f"{name}-{seed}-set"
        passes = [(family, False, False, "per_phrase") for family in (QWEN2_VL, QWEN25_VL)]
        if kind == "t2i":
            passes += [(QWEN2_VL, True, False, "per_phrase"), (QWEN2_VL, False, False, "per_image")]
            if args.reground:
                passes += [(family, True, True, "per_phrase") for family in (QWEN2_VL, QWEN25_VL)]
        for family, verify, reground, requests in passes:
            label = (f"{family}{', verify' if verify else ''}{' + reground' if reground else ''}"
                     f"{', per image' if requests == 'per_image' else ''}")
            out = args.out / f"{name}-{seed}-oracle-{label.replace(', ', '-').replace(' + ', '-').replace(' ', '-')}"
            started = time.monotonic()
            spec = with_verify(load_spec(WORLD_SPECS[kind]), verify, reground)
            if kind == "t2i":
                spec = with_ground_requests(spec, requests)
            annotate_with_oracle(spec, kind, sets[name, seed], read_truth(truth_dir), out, family=family)
            scores = {**score_run(out, truth_dir), **cost(out, time.monotonic() - started)}
            rows.append((name, f"{seed} oracle, {label}", scores))
    pools = {} if args.oracle_only else start_world_pools(vlm, llm, console)
    try:
        for name, seed in ([] if args.oracle_only else runs):
            kind, truth_dir = NAMED_SETS[name][0], args.out / f"{name}-{seed}-set"
            passes = [(", verify by the VLM", True, False, pools)]
            if kind == "t2i":
                oracle = OraclePool("vlm", WorldOracle(read_truth(truth_dir), family=QWEN2_VL))
                by_truth = {**pools, "vlm": VerifyFromTruth(pools["vlm"], oracle)}
                passes += [(", verify off", False, False, pools), (", verify by truth", True, False, by_truth)]
                if args.per_image:
                    passes += [(", per image", True, False, pools)]
                if args.reground:
                    passes += [(", verify + reground by the VLM", True, True, pools),
                               (", verify + reground by truth", True, True, by_truth)]
            else:
                passes += [(", verify off", False, False, pools),
                           (f", {other_assembly(load_spec(WORLD_SPECS[kind]))} assembly", True, False, pools)]
            for label, verify, reground, run_pools in passes:
                out = args.out / f"{name}-{seed}{label.replace(', ', '-').replace(' + ', '-').replace(' ', '-')}"
                started = time.monotonic()
                spec = with_verify(load_spec(WORLD_SPECS[kind]), verify, reground)
                if label == ", per image":  # a question the world VLM never learned: training asks per phrase
                    spec = with_ground_requests(spec, "per_image")
                if label.endswith(" assembly"):
                    spec = with_assembly(spec, other_assembly(spec))
                scores = annotate_and_score(kind, sets[name, seed], truth_dir, out, run_pools, console, show_progress=False,
                                            spec=spec)
                rows.append((name, f"{seed} world models{label}", {**scores, **cost(out, time.monotonic() - started)}))
    finally:
        for pool in pools.values():
            pool.shutdown()
    print(f"\nfidelity on held-out world sets: {args.count} inputs each, seeds {args.seeds}; models {vlm}, {llm}")
    for name in args.sets:
        columns = (T2I_COLUMNS + COST_COLUMNS) if NAMED_SETS[name][0] == "t2i" else EDIT_COLUMNS
        shown = [c for c in columns if any(c in s for k, _, s in rows if k == name)]
        print(f"\n{name:12} {'answered by':46} {'records':>8} " + " ".join(f"{c[:18]:>18}" for c in shown))
        for k, label, scores in rows:
            if k != name:
                continue
            cells = " ".join(f"{scores[c]:18.3f}" if isinstance(scores.get(c), float) else f"{'n/a':>18}" for c in shown)
            print(f"{name:12} {label:46} {scores['records']:>4}/{scores['inputs']:<3} {cells}")
    print("\nrejects (stage/reason: count)")
    for k, label, scores in rows:
        if scores.get("rejects_by_reason"):
            print(f"{k:12} {label:46} " + ", ".join(f"{r}: {n}" for r, n in sorted(scores["rejects_by_reason"].items())))
    (args.out / "fidelity.json").write_text(json.dumps([{"set": k, "answered_by": l, **s} for k, l, s in rows], indent=2))
    print(f"\nwrote {args.out / 'fidelity.json'}")


if __name__ == "__main__":
    main()
