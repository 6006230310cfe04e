"""`got-data report`: one self-contained HTML page about an annotate run, to look at before training.

Headline numbers, attempts, models and prompts, tokens and latency per stage, rejects by stage and
reason, the distributions people check (beside the GoT paper's figures) and a seeded random sample of
records linked to their preview page (written beside the report by `got-data view`'s code). Every
plot and thumbnail is a data URI, the page loads nothing and runs no script (its Content-Security-
Policy says so), and every text from the run goes through `view.shown` (escaped, NUL and bidi controls
written out): captions are untrusted.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from got_data import uri
from got_data.distributions import Histogram, Tally
from got_data.errors import GotDataError, InputError, ShardError
from got_data.records import EditRecord, MultiTurnRecord, T2IRecord
from got_data.report import figures
from got_data.report.facts import RunFacts, gather, require_output_folder
from got_data.shards.image_formats import open_claimed
from got_data.shards.reader import ShardSample
from got_data.uri import Location, StorageError
from got_data.view import InvalidSample, page_target, shown, write_preview

REPORT_FILE = "report.html"
DEFAULT_SAMPLE = 24
DEFAULT_SEED = 0
THUMB_SIDE = 128
TEXT_CHARS = 240
# The GoT paper's released T2I sets (LAION-Aesthetics-HR-GoT / JourneyDB-GoT), docs/STATS.md.
PAPER_PROMPT_CHARS = {"GoT paper, LAION": 110.81, "GoT paper, JourneyDB": 149.78}
PAPER_GOT_CHARS = {"GoT paper, LAION": 811.56, "GoT paper, JourneyDB": 906.01}
PAPER_BOXES = {"GoT paper, LAION": 3.78, "GoT paper, JourneyDB": 4.09}

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f3f3f3;color:#222;max-width:1200px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem 1.2rem;margin:0 0 1.2rem}
h1{font-size:1.4rem}h2{font-size:1.05rem;margin:0 0 .6rem}
table{border-collapse:collapse;font-size:.85rem;margin:.3rem 0 .6rem}
th,td{border-bottom:1px solid #e4e4e4;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.headline{display:flex;flex-wrap:wrap;gap:.8rem}
.headline div{background:#f7f7f7;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.headline b{display:block;font-size:1.3rem}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
.plots img{width:440px;height:auto;border:1px solid #eee}
code,pre{font-family:ui-monospace,monospace;font-size:.8rem}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem;max-height:14rem;overflow:auto}
td img{width:96px;height:auto}
.bad{color:#b00020}
.note{color:#555;font-size:.85rem}
"""


@dataclass(frozen=True)
class ReportResult:
    path: Path | Location
    samples_page: Path | Location | None
    sample: int


def _e(value: Any) -> str:
    return shown(str(value))


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>" for i, v in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>\n'


def _plot(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _headline(facts: RunFacts) -> str:
    attempts = facts.attempts()
    latest = attempts[-1]["work"] if attempts else {}
    elapsed = sum(a.get("work", {}).get("elapsed_s", 0.0) for a in attempts)
    written = sum(a.get("work", {}).get("records", 0) for a in attempts)
    numbers = [
        ("inputs", facts.records + facts.reject_count), ("records", facts.records), ("rejects", facts.reject_count),
        ("shards", len(facts.shards)), ("attempts", len(attempts) or "-"),
        ("records/s (all attempts)", f"{written / elapsed:.3g}" if elapsed > 0 else "-"),
        ("records/s (latest)", latest.get("records_per_s", "-")),
    ]
    cards = "".join(f"<div><b>{_e(value)}</b>{_e(label)}</div>" for label, value in numbers)
    state = ""
    if facts.stats is not None and not facts.stats.get("complete", True):
        state = ('<p class="bad">stats.json says this run has not finished (it is running, or was killed: '
                 "rerun the same command to resume); numbers are up to its last finished shard.</p>")
    return _section("Headline", f'<div class="headline">{cards}</div>{state}', "headline")


def _attempts(facts: RunFacts) -> str:
    rows = [[a.get("number"), a.get("status"), a.get("started_at"), a.get("ended_at") or "-",
             a.get("work", {}).get("inputs_seen", "-"), a.get("work", {}).get("records", "-"),
             a.get("work", {}).get("rejects", "-"), a.get("work", {}).get("records_per_s", "-"),
             " ".join(a.get("argv", []))] for a in facts.attempts()]
    if not rows:
        return _section("Attempts", '<p class="note">no stats.json with attempts in this folder</p>', "attempts")
    headers = ["#", "status", "started", "ended", "inputs", "records", "rejects", "records/s", "command line"]
    return _section("Attempts", _table(headers, rows, numeric={0, 4, 5, 6, 7}), "attempts")


def _models_and_spec(facts: RunFacts) -> str:
    attempts = facts.attempts()
    prov = facts.provenance
    models = attempts[-1].get("models", []) if attempts else [m.model_dump() for m in prov.models] if prov else []
    body = _table(["role", "name", "revision", "family"],
                  [[m.get("role"), m.get("name"), m.get("revision") or "-", m.get("family") or "-"] for m in models])
    spec_rows = []
    if prov is not None:
        spec_rows += [["pipeline", f"{prov.pipeline} {prov.pipeline_version}"], ["got-data", prov.got_data_version]]
    if attempts:
        spec_rows.append(["spec sha256", attempts[-1].get("spec_sha256", "-")])
    body += _table(["spec", "value"], spec_rows)
    if attempts and isinstance(attempts[-1].get("spec"), dict):
        spec = json.dumps(attempts[-1]["spec"], indent=1, sort_keys=True)
        body += f'<details id="spec"><summary>the spec as run (latest attempt)</summary><pre>{_e(spec)}</pre></details>'
    if prov is not None:
        body += _table(["stage", "prompt sha256"], [[stage, digest] for stage, digest in sorted(prov.prompt_hashes.items())])
        body += f"<p class=\"note\">sampling per stage</p><pre>{_e(json.dumps(prov.sampling, indent=1, sort_keys=True))}</pre>"
    return _section("Models, prompts and spec", body, "models")


def _stages(facts: RunFacts) -> str:
    tokens: dict[str, Counter] = {}
    for attempt in facts.attempts():
        for stage, usage in attempt.get("work", {}).get("tokens_per_stage", {}).items():
            tokens.setdefault(stage, Counter()).update(usage)
    rows = [[stage, u["requests"], u["prompt_tokens"], u["output_tokens"]] for stage, u in tokens.items()]
    body = _table(["stage", "requests", "prompt tokens", "output tokens"], rows, numeric={1, 2, 3})
    latency = (facts.stats or {}).get("run", {}).get("latency_s", {})
    if latency:
        stages = list(latency)
        histograms = {stage: Histogram.from_dict(latency[stage]) for stage in stages}
        percentiles = {f"p{q}": [histograms[s].percentile(q) for s in stages] for q in (50, 90, 99)}
        body += _table(["stage", "inputs", "p50 s", "p90 s", "p99 s", "max s"],
                       [[s, histograms[s].count, *(f"{percentiles[f'p{q}'][i]:.3g}" for q in (50, 90, 99)),
                         f"{histograms[s].high:.3g}"] for i, s in enumerate(stages)], numeric={1, 2, 3, 4, 5})
        body += '<div class="plots">' + _plot(figures.latency_figure("latency per stage (latest attempt)", stages, percentiles),
                                              "latency per stage") + "</div>"
    return _section("Tokens and latency per stage (all attempts; latency of the latest)", body, "stages")


def _rejects(facts: RunFacts) -> str:
    if not facts.rejects:
        return _section("Rejects", "<p>no input was rejected</p>", "rejects")
    rows = [[stage, reason, n] for (stage, reason), n in sorted(facts.rejects.items(), key=lambda i: (-i[1], i[0]))]
    body = _table(["stage", "reason", "inputs"], rows, numeric={2})
    body += '<p class="note">what each reason means and what to do: docs/REJECTS.md</p>'
    tally = Tally(Counter({f"{stage}/{reason}": n for (stage, reason), n in facts.rejects.items()}))
    body += '<div class="plots">' + _plot(figures.tally_figure("rejects by stage/reason", tally, "stage/reason"),
                                          "rejects by stage and reason") + "</div>"
    return _section("Rejects by stage and reason", body, "rejects")


def _distributions(facts: RunFacts) -> str:
    d = facts.dataset
    t, h = d.tallies, d.histograms
    plots = [
        (figures.tally_figure("boxes per record", t["boxes_per_record"], "boxes", PAPER_BOXES), "boxes per record"),
        (figures.tally_figure("boxes per phrase / edit", t["boxes_per_phrase"], "boxes"), "boxes per phrase"),
        (figures.tally_figure("objects per record", t["objects_per_record"], "objects"), "objects per record"),
        (figures.histogram_figure("box area (fraction of the image)", h["box_area"], "area", log_x=True), "box area"),
        (figures.histogram_figure("box aspect (width / height)", h["box_aspect"], "aspect", log_x=True), "box aspect"),
        (figures.histogram_figure("prompt / instruction length", h["prompt_chars"], "characters", PAPER_PROMPT_CHARS),
         "prompt length"),
        (figures.histogram_figure("GoT length", h["got_chars"], "characters", PAPER_GOT_CHARS), "GoT length"),
        (figures.histogram_figure("description length", h["description_chars"], "characters"), "description length"),
        (figures.sizes_figure("image sizes", t["image_sizes"]), "image sizes"),
    ]
    if t["edit_types"].count:
        plots.append((figures.tally_figure("edit types", t["edit_types"], "edit type"), "edit types"))
    means = _table(["measure", "this run", "GoT paper (LAION / JourneyDB)"], [
        ["prompt characters", f"{h['prompt_chars'].mean:.1f}", "110.81 / 149.78"],
        ["GoT characters", f"{h['got_chars'].mean:.1f}", "811.56 / 906.01"],
        ["boxes per record", f"{t['boxes_per_record'].mean() or 0:.2f}", "3.78 / 4.09"],
    ])
    note = (f'<p class="note">{d.records} records, counted from {_e(facts.dataset_from)}; the paper\'s figures are '
            "for T2I records (an edit's prompt is its instruction).</p>")
    images = "".join(_plot(uri, alt) for uri, alt in plots)
    return _section("Distributions", f'{note}{means}<div class="plots">{images}</div>', "distributions")


def thumbnail_uri(data: bytes, member: str) -> str:
    """A small JPEG of an image, opened as the format its member name claims only, as a data URI."""
    with open_claimed(data, member) as image:
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
        small = image.convert("RGB")
    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"


def _sample_row(entry: ShardSample | InvalidSample, link: str) -> str:
    if isinstance(entry, InvalidSample):
        key = entry.key or "(whole shard)"
        return (f'<tr><td></td><td><a href="{_e(link)}#{_e(key)}"><code>{_e(key)}</code></a></td><td>invalid</td>'
                f'<td class="bad" colspan="3">{_e(_short(entry.error))}</td></tr>')
    record = entry.record
    info = record.images[0]
    try:
        thumb = f'<img src="{thumbnail_uri(entry.images[info.member], info.member)}" alt="{_e(info.role)}">'
    except (GotDataError, OSError, ValueError, Image.DecompressionBombError) as exc:
        thumb = f'<span class="bad">{_e(f"image not drawable: {exc}")}</span>'
    if isinstance(record, T2IRecord):
        text, boxes = record.prompt, sum(len(obj.boxes) for obj in record.objects)
    elif isinstance(record, EditRecord):
        text, boxes = record.instruction, len(record.edit.regions)
    else:
        assert isinstance(record, MultiTurnRecord)
        text, boxes = " / ".join(record.instructions), sum(len(step.regions) for step in record.steps)
    caption = record.source.original_caption
    return (f'<tr><td>{thumb}</td><td><a href="{_e(link)}#{_e(record.key)}"><code>{_e(record.key)}</code></a></td>'
            f"<td>{_e(record.kind)}</td><td>{_e(_short(text))}</td>"
            f"<td>{_e(_short(caption)) if caption is not None else '-'}</td><td class=\"n\">{boxes}</td></tr>")


def _sample(facts: RunFacts, samples_page: Path | Location | None, seed: int) -> str:
    if not facts.sample or samples_page is None:
        return _section("Random sample", "<p>no records in this folder</p>", "sample")
    rows = "".join(_sample_row(entry, samples_page.name) for entry in facts.sample)
    body = (f'<p class="note">{len(facts.sample)} records drawn at random (seed {seed}; a large run is sampled from '
            'a few shards chosen at random, so the page reads only those); each key '
            f'opens its preview (boxes drawn, GoT highlighted) in <code>{_e(samples_page.name)}</code>.</p>'
            "<table><thead><tr><th>image</th><th>key</th><th>kind</th><th>prompt / instruction</th>"
            f"<th>original caption</th><th>boxes</th></tr></thead><tbody>{rows}</tbody></table>")
    return _section("Random sample", body, "sample")


def render_report(facts: RunFacts, samples_page: Path | Location | None, seed: int) -> str:
    """The whole page as text."""
    title = f"GoT run report · {facts.out_dir.name}"
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    head = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" "
            "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<header><h1>{_e(title)}</h1><p class=\"note\">{_e(facts.out_dir)} · written {_e(written)}</p></header>\n")
    body = (_headline(facts) + _attempts(facts) + _models_and_spec(facts) + _stages(facts) + _rejects(facts)
            + _distributions(facts) + _sample(facts, samples_page, seed))
    return head + body + "</body></html>\n"


def _beside(page: Path | Location, name: str) -> Path | Location:
    return page.parent.join(name) if isinstance(page, Location) else page.with_name(name)


def _report_target(folder: Location, out: Path | Location | str | None) -> Path | Location:
    """Where the report goes: `out`, else inside the run's folder (a bucket prefix: in the bucket)."""
    if out is None:
        return folder.join(REPORT_FILE) if folder.remote else Path(folder.path) / REPORT_FILE
    path = page_target(out)
    if isinstance(path, Path):
        if path.is_dir():
            raise InputError(f"--out {path} is a folder; give the HTML file to write, e.g. {path / REPORT_FILE}")
        if not path.parent.is_dir():
            raise InputError(f"--out {path}: folder {path.parent} does not exist")
    return path


def write_report(out_dir: Path | str | Location, out: Path | Location | str | None = None,
                 sample_size: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED) -> ReportResult:
    """Write `report.html` (or `out`) about the annotate output `out_dir` (a folder or a bucket prefix,
    read through the URI layer), and its sample's preview page beside it (`<name>-samples.html`).
    Both appear whole or not at all."""
    if sample_size < 0:
        raise InputError(f"the sample size must be 0 or more, got {sample_size}")
    folder = require_output_folder(out_dir)
    path = _report_target(folder, out)
    facts = gather(folder, sample_size, seed)
    samples_page = _beside(path, f"{path.name.rsplit('.', 1)[0]}-samples.html") if facts.sample else None
    if samples_page is not None:
        keys = {entry.key for entry in facts.sample if entry.key is not None}
        by_name = {str(tar): tar for tar in facts.shards}
        sampled_shards = sorted({by_name[entry.shard] for entry in facts.sample}, key=str)  # only the tars that hold it
        write_preview(sampled_shards, samples_page, limit=max(len(facts.sample), 1), keys=keys)
    try:
        uri.write_text(path, render_report(facts, samples_page, seed))
    except (OSError, StorageError) as exc:
        raise ShardError(f"cannot write {path}: {exc}") from exc
    return ReportResult(path=path, samples_page=samples_page, sample=len(facts.sample))
