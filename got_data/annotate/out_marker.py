"""Which run an output folder belongs to, so `--out` never adopts or overwrites another job's files.

The first run into a folder writes `_state/run.json`: the pipeline, one hash per part of the spec that
changes what is written (stages and their options, prompts, sampling, models) and a hash of the input's
identity (where it lives, not what it holds: more inputs appended to the same folder or manifest still
resume). A later run into the folder must match it; pool sizes and other throughput knobs may change.
A non-empty folder without the marker, or with another job's, is refused with one line naming what
differs, unless the user passes `--force` to take it over. The marker holds hashes only: no host path
is published with the shards.

All of this runs before Ray or any pool starts, so a wrong `--out` costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from got_data import uri
from got_data.annotate.projection import PLAN_FILE
from got_data.annotate.spec_check import effective_spec, family_variants
from got_data.errors import ShardError
from got_data.ingest.items import Source
from got_data.spec import PipelineSpec, load_prompt

MARKER = Path("_state") / "run.json"
MARKER_VERSION = 1


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _prompt_texts(name: str, prompt_dirs: list[Path]) -> dict[str, str]:
    """A stage's prompt file and its model-family variants (`stem.<family>.txt`), by file name."""
    files = [load_prompt(name, prompt_dirs).path, *family_variants(name, prompt_dirs)]
    return {f.name: f.read_text(encoding="utf-8") for f in files}


@dataclass(frozen=True)
class RunIdentity:
    """What must stay the same for a rerun to resume into the same output folder."""

    pipeline: str
    stages: str
    prompts: str
    sampling: str
    models: str
    input: str
    images: str
    version: int = MARKER_VERSION

    @classmethod
    def of(cls, spec: PipelineSpec, source: Source[Any], models: dict[str, str],
           strip_metadata: bool = False) -> RunIdentity:
        """`models`: the model each role uses (a path, hub id or pool model name and revision), by role;
        `strip_metadata`: whether published images lose their metadata (it changes every image member)."""
        pixels = {role: (m.min_pixels, m.max_pixels) for role, m in spec.models.items()}
        return cls(
            pipeline=f"{spec.name}/{spec.record_kind}",
            stages=_digest([(s["name"], s["role"], s["options"]) for s in effective_spec(spec)["stages"]]),
            prompts=_digest({s.name: _prompt_texts(s.prompt, spec.prompt_dirs) for s in spec.stages if s.prompt}),
            sampling=_digest({s.name: s.sampling.model_dump() for s in spec.stages if s.role}),
            models=_digest({role: [models.get(role), pixels.get(role)] for role in spec.roles()}),
            input=_digest(f"{type(source).__name__}:{source.location}"),
            images=_digest({"strip_metadata": strip_metadata, "image_format": spec.image_format,
                            "min_image_side": spec.min_image_side}),
        )

    def differences(self, other: dict[str, Any]) -> list[str]:
        return [name for name, value in asdict(self).items() if other.get(name) != value]


_WHAT = {"pipeline": "the pipeline", "stages": "the stages or their options", "prompts": "the prompts",
         "sampling": "the sampling", "models": "the models", "input": "the input",
         "images": "the image options (--strip-metadata, image_format, min_image_side)", "version": "the marker version"}


def claim_output_dir(out: Path | str, identity: RunIdentity, force: bool = False) -> bool:
    """Check that `out` (a folder or a bucket prefix) is new, empty or this job's, then mark it as this
    job's. Returns True when it already held this job's output (a resume). Raises ShardError with one
    actionable line; a store that refuses access is a StorageError of one line, before any work."""
    folder = uri.location(out)
    if uri.is_file(folder):
        raise ShardError(f"--out {out} is a file; pass a folder (new, empty, or an earlier run of this job)")
    marker = folder.join(MARKER.as_posix())
    advice = "pass a new --out, or --force to take the folder over"
    resuming = False
    if uri.is_file(marker):
        try:
            recorded = json.loads(uri.read_text(marker))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ShardError(f"--out {out}: its run marker {marker} is unreadable ({exc}); {advice}") from exc
        differs = identity.differences(recorded if isinstance(recorded, dict) else {})
        if differs and not force:
            what = ", ".join(_WHAT[d] for d in differs)
            raise ShardError(f"--out {out} holds another job's output ({what} differ); a resume must use the same "
                             f"spec, prompts, models and input: {advice}")
        resuming = not differs
    elif uri.is_dir(folder) and any(e.base_name != PLAN_FILE for e in uri.list_dir(folder)) and not force:
        made_by = ("was written by a got-data version without run markers"
                   if uri.is_dir(folder.join(MARKER.parent.as_posix())) else "was not written by got-data annotate")
        raise ShardError(f"--out {out} is not empty and {made_by} (no {MARKER}); {advice}")
    uri.write_text(marker, json.dumps(asdict(identity), sort_keys=True, indent=1))
    return resuming
