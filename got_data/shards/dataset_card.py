"""README.md in a shard folder: the Hugging Face dataset card that makes `load_dataset(DIR)` work.

Without a card, `datasets` guesses: it picks the index parquet files (or fails on an empty
`rejects.parquet`), and its webdataset builder infers columns from the first five samples, so a
caption that is null there and a string later, or a multi-turn sample with more turns than those
five, breaks the load. The card names the tars as the data and declares every column: the record as
one `Json` column (its nested nulls need no type), and one `Image` column per image member found in
the shards (absent members load as None). It also says what the folder holds: record kinds, counts,
models, prompt versions, and a licence field for the owner to fill. Computed from the shards on disk
(indexes, the first record of each shard), so a resumed run's card covers every attempt.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

import got_data
from got_data import uri
from got_data.errors import ShardError
from got_data.records import SCHEMA_VERSION
from got_data.shards.index import read_index
from got_data.shards.layout import JSON_MEMBER, index_location_for, list_run_shard_locations, write_file_atomically
from got_data.shards.tar_stream import TarStream
from got_data.uri import Location

CARD_FILE = "README.md"
REJECTS_FILE = "rejects.parquet"
_TASKS = {"t2i": "text-to-image", "edit": "image-to-image", "multiturn": "image-to-image"}
_ROLE_ORDER = {"image": 0, "source": 1, "target": 2}
_TURN = re.compile(r"^turn(\d+)$")


def _member_order(member: str) -> tuple[int, int, str]:
    """Columns in record order: image / source, target, turn1, turn2, ... turn10 (not turn1, turn10, turn2)."""
    role = member.split(".")[0] if "." in member else "image"
    turn = _TURN.match(role)
    if turn:
        return (3, int(turn[1]), member)
    return (_ROLE_ORDER.get(role, 9), 0, member)


def _first_provenance(tar: Path | Location) -> dict[str, Any]:
    """The provenance of a shard's first record: every record of a shard comes from one run attempt."""
    for raw in TarStream(tar).samples():
        data = dict(raw.members).get(JSON_MEMBER)
        try:
            return json.loads(data)["provenance"] if data is not None else {}
        except (ValueError, KeyError, TypeError):
            return {}
    return {}


def card_facts(out_dir: Path | str | Location, name: str = "got") -> dict[str, Any]:
    """What the card states, from the shards on disk or in the bucket: counts, image members, models, prompts."""
    folder = uri.location(out_dir)
    if not folder.remote and not uri.is_dir(folder):
        raise ShardError(f"{folder} is not a folder")
    kinds: Counter[str] = Counter()
    members: set[str] = set()
    models: set[tuple[str, str, str]] = set()
    prompts: set[tuple[str, str]] = set()
    pipelines: set[str] = set()
    shards = list_run_shard_locations(folder, name)
    for tar in shards:
        for row in read_index(index_location_for(tar)):
            if row.member == JSON_MEMBER:
                kinds[row.kind] += 1
            else:
                members.add(row.member)
        provenance = _first_provenance(tar)
        for model in provenance.get("models", []):
            models.add((str(model.get("role")), str(model.get("name")), str(model.get("revision") or "-")))
        prompts.update((str(stage), str(sha)) for stage, sha in provenance.get("prompt_hashes", {}).items())
        if provenance.get("pipeline"):
            pipelines.add(f"{provenance['pipeline']} v{provenance.get('pipeline_version', '?')}")
    rejects_path = folder.join(REJECTS_FILE)
    rejects = None
    if uri.is_file(rejects_path):
        with uri.open_input(rejects_path) as f:
            rejects = pq.read_metadata(f).num_rows
    return {
        "name": name,
        "shards": len(shards),
        "counts_by_kind": dict(sorted(kinds.items())),
        "samples": sum(kinds.values()),
        "rejects": rejects,
        "image_members": sorted(members, key=_member_order),
        "models": sorted(models),
        "prompts": sorted(prompts),
        "pipelines": sorted(pipelines),
    }


def card_metadata(facts: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML header: data files, declared columns (`dataset_info.features`), tags."""
    features = [{"name": JSON_MEMBER, "dtype": "json"}]
    features += [{"name": member, "dtype": "image"} for member in facts["image_members"]]
    features += [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]
    kinds = list(facts["counts_by_kind"])
    return {
        "license": "unknown",
        "pretty_name": f"got-data {' + '.join(kinds) or 'empty'} GoT records",
        "task_categories": sorted({_TASKS[k] for k in kinds if k in _TASKS}),
        "tags": ["got-data", "generation-chain-of-thought", "grounding", "webdataset"],
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": "train", "path": f"{facts['name']}-*.tar"}],
        }],
        "dataset_info": {"config_name": "default", "features": features},
    }


def render_card(facts: dict[str, Any]) -> str:
    """The whole README.md: YAML header, then what the folder holds and how to load it."""
    header = yaml.safe_dump(card_metadata(facts), sort_keys=False, allow_unicode=True)
    header = header.replace(
        "license: unknown\n",
        "license: unknown  # FILL IN: the licence you share these records and their images under\n", 1,
    )
    kinds = ", ".join(f"{kind}: {count}" for kind, count in facts["counts_by_kind"].items()) or "none"
    rejects = "not recorded" if facts["rejects"] is None else f"{facts['rejects']} (see `{REJECTS_FILE}`)"
    models = "\n".join(f"| {role} | `{name}` | {rev} |" for role, name, rev in facts["models"]) or "| - | - | - |"
    prompts = "\n".join(f"| {stage} | `{sha}` |" for stage, sha in facts["prompts"]) or "| - | - |"
    columns = ", ".join(f"`{m}`" for m in facts["image_members"]) or "none"
    lines = [
        f"---\n{header}---",
        "",
        f"# {facts['name']}: GoT records made by got-data",
        "",
        "Generation chain-of-thought (GoT) records: each sample is one record (`json`, schema version "
        f"{SCHEMA_VERSION}) and its images, in webdataset tars `{facts['name']}-NNNNNN.tar`. The record "
        "format, the per-shard `.index.parquet` and `wids.json` are described in got-data's "
        "`got_data/shards/FORMAT.md`.",
        "",
        f"- samples: {facts['samples']} in {facts['shards']} shard(s) ({kinds})",
        f"- inputs rejected: {rejects}",
        f"- image columns: {columns} (a sample without one of them has None there)",
        f"- pipelines: {', '.join(facts['pipelines']) or 'unknown'}; written with got-data {got_data.__version__}",
        "- licence: not set. The owner of these records fills in `license` above (and the inputs' terms).",
        "",
        "| model role | model | revision |",
        "|---|---|---|",
        models,
        "",
        "| stage | prompt template sha256 |",
        "|---|---|",
        prompts,
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'rows = load_dataset("path/to/this/folder", split="train")',
        "rows[0][\"json\"][\"got\"]   # the record (a dict); images are PIL images in their columns",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_dataset_card(out_dir: Path | str | Location, name: str = "got") -> Path | Location:
    """Write README.md (the dataset card) for a folder's (or prefix's) finished shards, whole or not at
    all; returns where it went."""
    return write_file_atomically(uri.location(out_dir).join(CARD_FILE), render_card(card_facts(out_dir, name)))
