"""`got-data demo` / `make demo`: the T2I pipeline on the bundled photographs and the single-turn edit
pipeline on the bundled edit pairs, with the tiny models, then the validator over each output and
one record of each printed, so a newcomer sees the whole path."""

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
    from got_data.annotate.launch import ModelChoice, annotate, init_ray, start_pools
    from got_data.annotate.runner import RunOptions
    from got_data.ingest import open_edit_source, open_source
    from got_data.sample_data import sample_edit_pairs, sample_images_dir
    from got_data.spec import load_spec

    _fresh_output(out)
    t2i_spec, edit_spec = load_spec("t2i-tiny.yaml"), load_spec("edit.yaml")
    init_ray(None, 2)
    # One pool per role for both pipelines (their model settings agree), started once.
    pools = start_pools(t2i_spec, ModelChoice(), console)
    try:
        console.rule("[bold]1. annotate: T2I pipeline on the bundled sample images")
        annotate(t2i_spec, open_source(str(sample_images_dir()), dataset="got-data-samples"),
                 RunOptions(out_dir=out / "t2i", samples_per_shard=4, console=console), ModelChoice(), pools=pools)
        _validate_and_show(out / "t2i", console, "2")
        console.rule("[bold]3. annotate: single-turn edit pipeline on the bundled edit pairs")
        annotate(edit_spec, open_edit_source(sample_edit_pairs(), dataset="got-data-sample-edits"),
                 RunOptions(out_dir=out / "edit", samples_per_shard=4, console=console), ModelChoice(), pools=pools)
        _validate_and_show(out / "edit", console, "4")
    finally:
        for pool in pools.values():
            pool.shutdown()
    console.print(f"[bold]output:[/bold] {out.resolve()}/{{t2i,edit}}  "
                  "(shards, *.index.parquet, manifest.json, rejects.parquet, stats.json, preview.html)")


def _validate_and_show(out: Path, console: Console, step: str) -> None:
    from got_data.shards.commands import render_report
    from got_data.shards.layout import list_shards
    from got_data.shards.reader import iter_samples
    from got_data.shards.validate import validate_paths
    from got_data.view import write_preview

    console.rule(f"[bold]{step}. validate the shards, show one record")
    if not list_shards(out):
        console.print("no record was written (every input was rejected: see rejects.parquet)")
        return
    render_report(validate_paths([out]), console)
    sample = next(iter_samples(out))
    console.print(Syntax(json.dumps(json.loads(sample.record.model_dump_json()), indent=2)[:4000], "json"))
    page = write_preview(out)
    console.print(f"[bold]look at the records:[/bold] {page.path.resolve()} ({page.samples} samples)")
