"""The arithmetic of `got-data plan`: a measured sample's per-input costs scaled to the whole input and
priced in device time from a throughput table. Pure logic (no Ray, no model), so it is unit-tested alone.

Cost model, per role: device seconds = prefill tokens / prefill rate + decoded tokens / decode rate, where
prefill tokens are the prompt tokens the prefix cache did not already hold (the sample's hit rate)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from got_data import uri
from got_data.errors import GotDataError

MEASURED_DEVICE = "this machine (measured)"
PLAN_FILE = "plan.json"
COUNTED = ("requests", "prompt_tokens", "output_tokens", "images")


class PlanError(GotDataError):
    """A plan cannot be made as asked: an unknown device, a bad throughput table, an uncountable input."""


@dataclass(frozen=True)
class Throughput:
    """One row of a throughput table: tokens per second on one device for a model of about this size."""

    device: str
    model_params_b: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    source: str
    estimate: bool = True


def _rows(device: str, entries: Any, origin: str) -> list[Throughput]:
    if not isinstance(entries, list) or not entries:
        raise PlanError(f"{origin}: device {device!r} needs a list of rows (model_params_b, prefill_tokens_per_s, "
                        "decode_tokens_per_s, source)")
    rows = []
    for entry in entries:
        try:
            row = Throughput(device=device, model_params_b=float(entry["model_params_b"]),
                             prefill_tokens_per_s=float(entry["prefill_tokens_per_s"]),
                             decode_tokens_per_s=float(entry["decode_tokens_per_s"]),
                             source=str(entry["source"]), estimate=bool(entry.get("estimate", True)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"{origin}: a row of device {device!r} is incomplete or not numeric ({exc!r}); each row "
                            "needs model_params_b, prefill_tokens_per_s, decode_tokens_per_s and source") from None
        if min(row.model_params_b, row.prefill_tokens_per_s, row.decode_tokens_per_s) <= 0:
            raise PlanError(f"{origin}: device {device!r} has a row with a size or rate <= 0")
        rows.append(row)
    return rows


def _parse_table(text: str, origin: str) -> dict[str, list[Throughput]]:
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise PlanError(f"{origin}: not valid YAML or JSON ({exc})") from None
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, dict):
        raise PlanError(f"{origin}: expected a mapping `devices: {{NAME: [rows]}}`")
    return {str(name): _rows(str(name), entries, origin) for name, entries in devices.items()}


def load_throughput_table(path: Path | None = None) -> dict[str, list[Throughput]]:
    """The shipped table (estimates) with the devices of `path`, if given, replacing those of the same name."""
    shipped = resources.files("got_data.annotate").joinpath("throughput.yaml").read_text(encoding="utf-8")
    table = _parse_table(shipped, "the shipped throughput table")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanError(f"--throughput {path}: cannot read it ({exc.strerror or exc})") from None
        table.update(_parse_table(text, f"--throughput {path}"))
    return table


def pick_row(table: dict[str, list[Throughput]], device: str, params_b: float) -> Throughput:
    """The device's row for the model size nearest (by ratio) to `params_b`."""
    rows = table.get(device)
    if not rows:
        raise PlanError(f"no throughput figures for device {device!r}; known: {', '.join(sorted(table))} "
                        "(add yours with --throughput FILE)")
    return min(rows, key=lambda row: abs(math.log(row.model_params_b / max(params_b, 1e-6))))


def model_params_b(config: dict[str, Any]) -> float:
    """Approximate parameters (billions) of a decoder from its config.json: embeddings, attention and MLP of
    the text model (a VL model's vision tower is left out, a few percent of a 7B model)."""
    text = config.get("text_config") or config
    hidden = int(text.get("hidden_size") or config.get("hidden_size") or 0)
    layers = int(text.get("num_hidden_layers") or config.get("num_hidden_layers") or 0)
    if not hidden or not layers:
        raise PlanError("the model's config.json names no hidden_size / num_hidden_layers: cannot size it")
    heads = int(text.get("num_attention_heads") or 1)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    intermediate = int(text.get("intermediate_size") or 4 * hidden)
    vocab = int(text.get("vocab_size") or config.get("vocab_size") or 0)
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    per_layer = attention + 3 * hidden * intermediate
    return (layers * per_layer + vocab * hidden * (1 if tied else 2)) / 1e9


def per_input_costs(sample: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per role: the sample's requests, prompt tokens, prefill tokens (prompt minus prefix-cache hits),
    decoded tokens and images, divided by the sampled inputs."""
    inputs = sample["inputs"]
    if inputs < 1:
        raise PlanError("the sample holds no input: nothing to measure")
    costs: dict[str, dict[str, float]] = {}
    for usage in sample["stages"].values():
        role = costs.setdefault(usage["role"], dict.fromkeys(COUNTED, 0.0))
        for key in COUNTED:
            role[key] += usage[key] / inputs
    for name, role in costs.items():
        hit_rate = sample["roles"].get(name, {}).get("prefix_cache_hit_rate", 0.0)
        role["prefill_tokens"] = role["prompt_tokens"] * (1 - hit_rate)
    return costs


def device_seconds(cost: dict[str, float], row: Throughput) -> float:
    """Device seconds one input costs a role on `row`'s device."""
    return cost["prefill_tokens"] / row.prefill_tokens_per_s + cost["output_tokens"] / row.decode_tokens_per_s


def measured_rows(sample: dict[str, Any]) -> dict[str, Throughput]:
    """This machine's row per role, from the sample: one rate, (prefill + decoded tokens) / the seconds the
    role's engines were busy, in both columns (a sample does not separate prefill from decode time), so the
    cost model gives back exactly the busy time it was measured from."""
    rows = {}
    for role, cost in per_input_costs(sample).items():
        measured = sample["roles"][role]
        tokens = (cost["prefill_tokens"] + cost["output_tokens"]) * sample["inputs"]
        rate = tokens / measured["busy_s"] if measured["busy_s"] > 0 and tokens > 0 else 1.0
        rows[role] = Throughput(device=MEASURED_DEVICE, model_params_b=measured["params_b"],
                                prefill_tokens_per_s=rate, decode_tokens_per_s=rate, estimate=False,
                                source=f"measured: {sample['inputs']} sampled inputs, {role} engines busy "
                                       f"{measured['busy_s']:.1f} s")
    return rows


def split_devices(seconds: dict[str, float], devices: int) -> dict[str, int] | None:
    """Devices per role in proportion to each role's device seconds (largest remainder, then at least one each);
    None when there are fewer devices than roles (the roles then take turns on shared devices)."""
    busy = {role: s for role, s in seconds.items() if s > 0}
    if not busy or devices < len(busy):
        return None
    total = sum(busy.values())
    quotas = {role: devices * s / total for role, s in busy.items()}
    split = {role: int(quota) for role, quota in quotas.items()}
    leftover = devices - sum(split.values())
    for role in sorted(quotas, key=lambda r: quotas[r] - split[r], reverse=True)[:leftover]:
        split[role] += 1
    for role in [r for r, n in split.items() if n == 0]:
        split[max(split, key=lambda r: split[r])] -= 1
        split[role] = 1
    return split


def project(sample: dict[str, Any], inputs: int, rows: dict[str, Throughput], devices: int) -> dict[str, Any]:
    """The whole run of `inputs` inputs on `devices` devices of the rows' kind: per role and in total,
    requests, tokens, images, device-hours, the recommended split of devices, and wall time."""
    if devices < 1:
        raise PlanError(f"--gpus must be at least 1, got {devices}")
    costs = per_input_costs(sample)
    seconds = {role: device_seconds(cost, rows[role]) for role, cost in costs.items()}
    split = split_devices(seconds, devices)
    roles: dict[str, Any] = {}
    for role, cost in costs.items():
        roles[role] = {key: cost[key] * inputs for key in (*COUNTED, "prefill_tokens")}
        roles[role].update(device_seconds_per_input=seconds[role], device_hours=seconds[role] * inputs / 3600,
                           devices=split.get(role) if split else None, throughput=asdict(rows[role]))
    if split:
        wall = max(seconds[role] * inputs / split[role] for role in split)
    else:
        wall = sum(seconds.values()) * inputs / devices
    total_seconds = sum(seconds.values())
    return {
        "inputs": inputs,
        "device": next(iter(rows.values())).device if rows else None,
        "devices": devices,
        "records": inputs * sample["records"] / sample["inputs"],
        "roles": roles,
        "totals": {key: sum(r[key] for r in roles.values()) for key in (*COUNTED, "prefill_tokens", "device_hours")},
        "wall_s": wall,
        "vlm_share": seconds.get("vlm", 0.0) / total_seconds if total_seconds else None,
        "split": split,
    }


def plan_comparison(plan: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """A finished run's figures beside the plan's, per input and stage (requests, tokens) and for the run."""
    sample = plan["sample"]
    run = stats["run"]
    done = run["inputs_seen"] - run["skipped_already_done"]
    stages = {}
    for name, planned in sample["stages"].items():
        actual = run["tokens_per_stage"].get(name, {})
        stages[name] = {key: {"planned": planned[key] / sample["inputs"],
                              "actual": actual.get(key, 0) / done if done else None}
                        for key in ("requests", "prompt_tokens", "output_tokens")}
    return {
        "inputs": {"planned": plan["inputs"], "actual": run["inputs_seen"]},
        "records_per_input": {"planned": sample["records"] / sample["inputs"],
                              "actual": run["records"] / done if done else None},
        "per_input": stages,
    }


def read_plan(path: Path | str | uri.Location) -> dict[str, Any]:
    """A plan.json written by `got-data plan` (a local path or a bucket URI); PlanError when it is not one."""
    try:
        plan = json.loads(uri.read_text(path))
    except (OSError, ValueError, GotDataError) as exc:
        raise PlanError(f"plan {path} cannot be read ({exc}); pass a plan.json written by `got-data plan`") from None
    if not isinstance(plan, dict) or not {"sample", "inputs"} <= plan.keys():
        raise PlanError(f"{path} is not a plan.json written by `got-data plan` (no sample or inputs)")
    return plan
