"""`got-data view`: one static HTML page to *look* at GoT records instead of reading their JSON.

Boxes as numbers say little; drawn over the image, next to the text with each grounded phrase in its
box's colour, they show at a glance whether grounding is right. The page is one self-contained file
(images as data URIs, no external asset, no script), so it opens anywhere and can be attached to an
issue. Captions and model text are untrusted: every text goes through `shown` (HTML-escaped, NUL and
bidi controls written out as [U+202E] so the page shows the characters a model would read), and the page's
Content-Security-Policy forbids scripts besides. A sample that does not validate is shown with its
error (and its record text) instead of stopping the page: a preview is where people look for them.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from PIL import Image

from got_data import uri
from got_data.errors import GotDataError, InputError, ShardError
from got_data.records import Box, EditOp, EditRecord, ImageInfo, MultiTurnRecord, T2IRecord
from got_data.records.codec import UNSAFE_CHARACTER_RE, ParsedGot, parse_got
from got_data.shards.image_formats import open_claimed
from got_data.shards.layout import JSON_MEMBER, ShardSources, resolve_shards
from got_data.shards.reader import AnyRecord, ShardSample, sample_from_raw
from got_data.shards.tar_stream import TarStream
from got_data.uri import Location, StorageError

DEFAULT_PAGE = "preview.html"
DEFAULT_LIMIT = 200
# Images larger than this (longest side, pixels) are embedded as a JPEG thumbnail: boxes are relative,
# so they stay exact, and a page of 200 samples stays small enough to open.
THUMBNAIL_SIDE = 768
# Distinct colours readable with white label text (Sasha Trubetskoy's set, darkest first).
PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080",
    "#f032e6", "#9a6324", "#800000", "#808000", "#000075", "#469990",
)
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f3f3f3;color:#222}
header p{color:#555}
.sample{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem 1.2rem;margin:0 0 1.5rem}
.sample h2{font-size:1rem;margin:0 0 .8rem;font-family:ui-monospace,monospace}
.panels{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:.8rem}
figure{margin:0}
figcaption{font-size:.85rem;color:#444;margin-top:.3rem;max-width:320px}
.frame{position:relative;width:320px;line-height:0}
.frame img{width:100%;height:auto;display:block}
.box{position:absolute;box-sizing:border-box;border:2px solid}
.box span{position:absolute;left:-2px;top:-2px;font:11px/1.4 system-ui,sans-serif;color:#fff;
  padding:0 4px;white-space:nowrap;max-width:300px;overflow:hidden;text-overflow:ellipsis}
.got{white-space:pre-wrap;line-height:1.7;margin:.4rem 0}
.got mark{color:inherit;padding:0 2px;border-radius:2px}
.got sub{font-family:ui-monospace,monospace;font-size:.7rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;font-size:.9rem;margin:.4rem 0}
dt{color:#666}
dd{margin:0;white-space:pre-wrap}
.invalid{border-color:#e6194b}
.invalid .error{color:#b00020;font-weight:600}
.invalid pre{white-space:pre-wrap;font-size:.8rem;background:#f7f7f7;padding:.5rem;max-height:12rem;overflow:auto}
"""
# How much of an invalid sample's record text the page shows.
INVALID_RECORD_CHARS = 2000


@dataclass(frozen=True)
class Overlay:
    """One box drawn over an image: where, what it grounds, in which colour."""

    box: Box
    label: str
    colour: str


@dataclass(frozen=True)
class Panel:
    """One image of a sample with the boxes that belong on it."""

    info: ImageInfo
    caption: str
    overlays: tuple[Overlay, ...] = ()


@dataclass(frozen=True)
class InvalidSample:
    """A sample (or a whole shard, key None) that could not be shown, with why."""

    key: str | None
    shard: str
    error: str
    record_text: str = ""


@dataclass(frozen=True)
class PreviewResult:
    path: Path | Location
    samples: int
    truncated: bool
    invalid: int = 0


def shown(text: str) -> str:
    """Text as it may go into the page: HTML-escaped, with NUL and bidi controls (which would reorder
    what the reader sees) written out as `[U+202E]`."""
    return html.escape(UNSAFE_CHARACTER_RE.sub(lambda m: f"[U+{ord(m[0]):04X}]", text))


def colour_of(ref_index: int) -> str:
    """The colour of the ref_index-th grounded phrase of a GoT text (the palette repeats)."""
    return PALETTE[ref_index % len(PALETTE)]


def percent(coordinate: int) -> str:
    """A relative coordinate in [0, 1000) as a CSS percentage, exactly (no float rounding)."""
    return f"{coordinate // 10}.{coordinate % 10}%"


def _t2i_panels(record: T2IRecord, parsed: ParsedGot) -> list[Panel]:
    ref_index = {ref.got_span: i for i, ref in enumerate(parsed.refs)}
    overlays = tuple(
        Overlay(box, obj.phrase, colour_of(ref_index[obj.span])) for obj in record.objects for box in obj.boxes
    )
    return [Panel(record.images[0], "image", overlays)]


def _edit_steps(record: EditRecord | MultiTurnRecord) -> list[EditOp]:
    return [record.edit] if isinstance(record, EditRecord) else list(record.steps)


def _step_image(record: EditRecord | MultiTurnRecord, step: int) -> str:
    """The role of the image edit `step` (1-based) was localized on: the latest one before it."""
    return "source" if isinstance(record, EditRecord) else record.image_before_step(step)


def _edit_panels(record: EditRecord | MultiTurnRecord, parsed: ParsedGot) -> list[Panel]:
    """Each edit's regions go on the image it applies to: the latest image before it (source, turn1,
    ...; a record split from one instruction may lack some, so several edits can share one), and
    each placed object (schema 1.1) on the image it is named about.

    The record guarantees the GoT text's boxes outside the placed objects' spans, in order, equal the
    edits' regions, so the n-th region overall takes the colour and phrase of the ref whose box it is."""
    placed = {obj.span for obj in record.objects or []}
    ref_index = {ref.got_span: i for i, ref in enumerate(parsed.refs)}
    box_refs = [i for i, ref in enumerate(parsed.refs) if ref.got_span not in placed for _ in ref.boxes]
    steps = _edit_steps(record)
    instructions = [record.instruction] if isinstance(record, EditRecord) else record.instructions
    starts = [sum(len(step.regions) for step in steps[:n]) for n in range(len(steps))]
    panels: list[Panel] = []
    for info in record.images:
        shown = [n for n in range(1, len(steps) + 1) if _step_image(record, n) == info.role]
        overlays = tuple(
            Overlay(box, parsed.refs[box_refs[starts[n - 1] + j]].phrase, colour_of(box_refs[starts[n - 1] + j]))
            for n in shown for j, box in enumerate(steps[n - 1].regions)
        )
        after = 1 if info.role == "target" else int(info.role[4:]) if info.role.startswith("turn") else 0
        caption = info.role if after == 0 else f"{info.role}: after “{instructions[after - 1]}”"
        if overlays:
            caption += (" (edit regions)" if len(steps) == 1 else f" (regions of edit {shown[0]})" if len(shown) == 1
                        else f" (regions of edits {', '.join(map(str, shown))})")
        objects = tuple(Overlay(box, obj.phrase, colour_of(ref_index[obj.span]))
                        for obj in record.objects or [] if obj.image == info.role for box in obj.boxes)
        if objects:
            caption += " (named objects)" if not overlays else " and named objects"
        panels.append(Panel(info, caption, overlays + objects))
    return panels


def panels_of(record: AnyRecord, parsed: ParsedGot) -> list[Panel]:
    """The sample's images in record order, each with the structured boxes drawn on it."""
    if isinstance(record, T2IRecord):
        return _t2i_panels(record, parsed)
    return _edit_panels(record, parsed)


def embeddable_image(data: bytes, info: ImageInfo) -> tuple[str, bytes]:
    """(mime type, bytes) to embed: the stored bytes, or a JPEG thumbnail when the image is large."""
    if max(info.width, info.height) <= THUMBNAIL_SIDE:
        return _MIME[info.format], data
    with open_claimed(data, info.member) as image:
        image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        thumb = image.convert("RGB")
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=85)
    return "image/jpeg", buffer.getvalue()


def _box_html(overlay: Overlay) -> str:
    b, label = overlay.box, shown(overlay.label)
    style = (f"left:{percent(b.x1)};top:{percent(b.y1)};width:{percent(b.x2 - b.x1)};"
             f"height:{percent(b.y2 - b.y1)};border-color:{overlay.colour}")
    return (f'<div class="box" style="{style}" title="{label} {b.render()}">'
            f'<span style="background:{overlay.colour}">{label}</span></div>')


def _panel_html(panel: Panel, data: bytes) -> str:
    mime, payload = embeddable_image(data, panel.info)
    uri = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
    alt = shown(f"{panel.info.role} ({panel.info.width}x{panel.info.height})")
    boxes = "".join(_box_html(o) for o in panel.overlays)
    return (f'<figure><div class="frame"><img src="{uri}" alt="{alt}">{boxes}</div>'
            f"<figcaption>{shown(panel.caption)}</figcaption></figure>")


def got_html(parsed: ParsedGot) -> str:
    """The GoT text as readers see it: plain text, each grounded phrase marked in its box's colour."""
    pieces: list[str] = []
    cursor = 0
    for i, ref in enumerate(parsed.refs):
        start, end = ref.plain_span
        colour = colour_of(i)
        boxes = " ".join(box.render() for box in ref.boxes)
        pieces.append(shown(parsed.plain[cursor:start]))
        pieces.append(f'<mark style="background:{colour}33;border-bottom:2px solid {colour}">'
                      f"{shown(ref.phrase)}</mark><sub style=\"color:{colour}\">{boxes}</sub>")
        cursor = end
    pieces.append(shown(parsed.plain[cursor:]))
    return f'<p class="got">{"".join(pieces)}</p>'


def _edit_fields(step: EditOp) -> str:
    what = step.target_object + (f" → {step.new_object}" if step.new_object else "")
    regions = " ".join(box.render() for box in step.regions)
    return f"{step.edit_type or 'edit'}: {what}; {step.change} [{regions}]"


def _fields(record: AnyRecord, shard: str) -> list[tuple[str, str]]:
    fields = [("key", record.key), ("dataset", record.source.dataset), ("input", record.source.input_ref),
              ("shard", Path(shard).name)]
    if record.source.original_caption is not None:
        fields.append(("original caption", record.source.original_caption))
    if isinstance(record, T2IRecord):
        return fields + [("prompt", record.prompt)]
    if isinstance(record, EditRecord):
        fields.append(("instruction", record.instruction))
        fields += [("reinstruction", text) for text in record.reinstructions]
        fields += [("source", record.source_description), ("target", record.target_description)]
        return fields + [("edit", _edit_fields(record.edit))]
    if record.combined_instruction is not None:
        fields.append(("combined instruction", record.combined_instruction))
    rewrites = record.reinstructions or [[] for _ in record.instructions]
    for n, (text, turn) in enumerate(zip(record.instructions, rewrites), 1):
        fields += [(f"turn {n}", text), *((f"turn {n} reinstruction", r) for r in turn)]
    fields += [("source", record.source_description), ("final", record.final_description)]
    return fields + [(f"edit {n}", _edit_fields(step)) for n, step in enumerate(record.steps, 1)]


def _fields_html(fields: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{shown(name)}</dt><dd>{shown(value)}</dd>" for name, value in fields)
    return f"<dl>{rows}</dl>"


def sample_html(sample: ShardSample, number: int) -> str:
    """One sample's section: its images with boxes side by side, the GoT text, then the record's fields."""
    record, parsed = sample.record, parse_got(sample.record.got)
    figures = "".join(_panel_html(panel, sample.images[panel.info.member]) for panel in panels_of(record, parsed))
    title = shown(f"#{number} {record.kind} · {record.key}")
    return (f'<section class="sample" id="{shown(record.key)}"><h2>{title}</h2>'
            f'<div class="panels">{figures}</div>{got_html(parsed)}'
            f"{_fields_html(_fields(record, sample.shard))}</section>\n")


def invalid_html(entry: InvalidSample, number: int) -> str:
    """An invalid sample's section: its key, shard and error, and the start of its record text."""
    what = entry.key if entry.key is not None else "(the whole shard)"
    title = shown(f"#{number} invalid · {what}")
    anchor = f' id="{shown(entry.key)}"' if entry.key is not None else ""
    record = f"<pre>{shown(entry.record_text[:INVALID_RECORD_CHARS])}</pre>" if entry.record_text else ""
    return (f'<section class="sample invalid"{anchor}><h2>{title}</h2>'
            f'<p class="error">{shown(entry.error)}</p>'
            f"{_fields_html([('shard', Path(entry.shard).name)])}{record}</section>\n")


def shard_entries(shards: Sequence[Path | Location], keys: set[str] | None = None) -> Iterator[ShardSample | InvalidSample]:
    """Every sample of the shards (only `keys` when given), valid or with its error; a tar that cannot be
    read further ends in one InvalidSample and the next shard follows."""
    for path in shards:
        try:
            for raw in TarStream(path).samples():
                if keys is not None and raw.key not in keys:
                    continue
                try:
                    yield sample_from_raw(raw, str(path))
                except ShardError as exc:
                    text = dict(raw.members).get(JSON_MEMBER, b"").decode("utf-8", errors="replace")
                    yield InvalidSample(raw.key, str(path), str(exc), text)
        except ShardError as exc:
            yield InvalidSample(None, str(path), str(exc))


def entry_html(entry: ShardSample | InvalidSample, number: int) -> tuple[str, bool]:
    """(section, drawn): a valid sample whose images or text cannot be drawn shows that error instead."""
    if isinstance(entry, InvalidSample):
        return invalid_html(entry, number), False
    try:
        return sample_html(entry, number), True
    # Pillow reports undecodable image bytes as OSError, ValueError or a DecompressionBombError.
    except (GotDataError, OSError, ValueError, Image.DecompressionBombError) as exc:
        return invalid_html(InvalidSample(entry.key, entry.shard, f"cannot draw this sample: {exc}"), number), False


def _page_head(shards: Sequence[Path | Location]) -> str:
    names = ", ".join(str(p) for p in shards[:5]) + (f" (+{len(shards) - 5} more)" if len(shards) > 5 else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" "
            "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
            f"<title>GoT preview</title><style>{_CSS}</style></head><body>\n"
            f"<header><h1>GoT preview</h1><p>{shown(names)}</p></header>\n")


def _page_tail(samples: int, truncated: bool) -> str:
    more = " (stopped at the limit; more samples follow in the shards)" if truncated else ""
    return f"<footer><p>{samples} sample(s) shown{more}.</p></footer>\n</body></html>\n"


def _write_samples(page: TextIO, entries: Iterator[ShardSample | InvalidSample], limit: int) -> tuple[int, bool, int]:
    count = invalid = 0
    for entry in entries:
        if count == limit:
            return count, True, invalid
        count += 1
        section, drawn = entry_html(entry, count)
        invalid += not drawn
        page.write(section)
    return count, False, invalid


def default_page_path(source: ShardSources, shards: list[Path | Location]) -> Path | Location:
    """`OUT_DIR/preview.html` for a folder of shards (a bucket prefix: in the bucket), else (a tar, a
    glob, a list) beside the first shard."""
    if isinstance(source, (str, Path)) and uri.is_dir(source):
        return uri.location(source).join(DEFAULT_PAGE) if uri.is_remote(source) else Path(source) / DEFAULT_PAGE
    first = shards[0]
    return first.parent.join(DEFAULT_PAGE) if isinstance(first, Location) else first.parent / DEFAULT_PAGE


def page_target(out: Path | Location | str) -> Path | Location:
    """Where a page goes: a bucket URI as its Location, anything else as a local path."""
    if isinstance(out, str):
        return uri.location(out) if uri.is_remote(out) else Path(out)
    return out


def write_preview(source: ShardSources, out: Path | Location | str | None = None,
                  limit: int = DEFAULT_LIMIT, keys: set[str] | None = None) -> PreviewResult:
    """Write the HTML page for the first `limit` samples of `source` (a shard folder, tar or glob, local
    or in a bucket), or only those whose key is in `keys`; `out` may name a page in a bucket too.

    Streams: one sample is in memory at a time. The page appears under its final name only once it is
    complete. Samples that do not validate are shown with their error; raises ShardError only when
    `source` names no shard or the page cannot be written.
    """
    if limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    shards = resolve_shards(source)
    page_path = default_page_path(source, shards) if out is None else page_target(out)
    tally: list[tuple[int, bool, int]] = []

    def write_page(staged: Path) -> None:
        with open(staged, "w", encoding="utf-8") as page:
            page.write(_page_head(shards))
            tally.append(_write_samples(page, shard_entries(shards, keys), limit))
            page.write(_page_tail(tally[0][0], tally[0][1]))

    try:
        uri.write_file(page_path, write_page)
    except (OSError, StorageError) as exc:
        raise ShardError(f"cannot write {page_path}: {exc}") from exc
    count, truncated, invalid = tally[0]
    return PreviewResult(path=page_path, samples=count, truncated=truncated, invalid=invalid)
