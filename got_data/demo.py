"""`got-data demo` / `make demo`: the T2I pipeline on the bundled photographs with the tiny models,
then the validator over the output and one record printed, so a newcomer sees the whole path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax

from got_data.errors import ShardError

MARKER = ".got-data-demo"


def _fresh_output(out: Path) -> None:
    """Start from an empty folder; only a previous demo output (it carries the marker) is removed."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ShardError(f"{out} is not empty and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by got-data demo; removed by the next demo run\n", encoding="utf-8")


def run_demo(out: Path, console: Console) -> None:
    from got_data.annotate.launch import ModelChoice, annotate
    from got_data.annotate.runner import RunOptions
    from got_data.ingest import open_source
    from got_data.sample_data import sample_images_dir
    from got_data.shards.commands import render_report
    from got_data.shards.reader import iter_samples
    from got_data.shards.validate import validate_paths
    from got_data.spec import load_spec

    _fresh_output(out)
    images = sample_images_dir()
    console.rule("[bold]1. annotate: T2I pipeline on the bundled sample images")
    annotate(load_spec("t2i.yaml"), open_source(str(images), dataset="got-data-samples"),
             RunOptions(out_dir=out, samples_per_shard=4, console=console), ModelChoice())
    console.rule("[bold]2. validate the shards")
    report = validate_paths([out])
    render_report(report, console)
    console.rule("[bold]3. one record")
    for sample in iter_samples(out):
        console.print(Syntax(json.dumps(json.loads(sample.record.model_dump_json()), indent=2)[:4000], "json"))
        break
    else:
        console.print("no record was written (every input was rejected: see rejects.parquet)")
    console.print(f"[bold]output:[/bold] {out.resolve()}  (shards, *.index.parquet, manifest.json, rejects.parquet, stats.json)")
