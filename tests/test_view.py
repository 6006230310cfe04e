"""The HTML viewer on the committed sample shards: boxes where the records say, text escaped, CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from got_data.cli import app
from got_data.records import RECORD_KINDS, Annotation, Box, GroundedObject, ImageInfo, T2IRecord, make_key, parse_got, render_got
from got_data.shards.reader import ShardSample, iter_samples
from got_data.shards.validate import validate_paths
from got_data.shards.writer import ShardWriter
from got_data.view import THUMBNAIL_SIDE, embeddable_image, write_preview

SHARDS_DIR = Path(__file__).resolve().parent / "data" / "shards"
KINDS = RECORD_KINDS


@dataclass
class DrawnBox:
    section: str
    image: int  # index of the image (within its section) the box is drawn on
    style: dict[str, str]
    label: str = ""


class Page(HTMLParser):
    """What a browser would show, collected with the standard library's parser."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: dict[str, list[str]] = {}  # section -> img srcs
        self.boxes: list[DrawnBox] = []
        self.marks: list[tuple[str, str]] = []  # (style, text)
        self.tags: set[str] = set()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attr["id"])
            self.images[attr["id"]] = []
        elif tag == "img":
            self.images[self.sections[-1]].append(attr["src"])
        elif tag == "div" and attr.get("class") == "box":
            style = dict(part.split(":", 1) for part in attr["style"].split(";"))
            self.boxes.append(DrawnBox(self.sections[-1], len(self.images[self.sections[-1]]) - 1, style))
            self._in = "box"
        elif tag == "span" and self._in == "box":
            self._in = "label"
        elif tag == "mark":
            self.marks.append((attr["style"], ""))
            self._in = "mark"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "mark"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "label":
            self.boxes[-1].label += data
        elif self._in == "mark":
            style, text = self.marks[-1]
            self.marks[-1] = (style, text + data)


Rendered = tuple[list[ShardSample], Page]


def parse_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def pct(value: int) -> str:
    return f"{value / 10:.1f}%"


def geometry(box: Box) -> dict[str, str]:
    return {"left": pct(box.x1), "top": pct(box.y1), "width": pct(box.x2 - box.x1), "height": pct(box.y2 - box.y1)}


def expected_boxes(sample: ShardSample) -> list[tuple[int, Box, str]]:
    """(image index, box, label) for every structured box: T2I objects on the image, labelled with their
    phrase; each edit's regions on the image it applies to (edit n on image n; in a record split from
    one instruction, schema 1.2, on the last image there is before it), labelled with the phrase the GoT
    text grounds that box with (the text's boxes outside placed objects, in order, are the edits'
    regions), then the placed objects (schema 1.1) on the image each is named about."""
    record = sample.record
    if record.kind == "t2i":
        return [(0, box, obj.phrase) for obj in record.objects for box in obj.boxes]
    steps = [record.edit] if record.kind == "edit" else record.steps
    placed = record.objects or []
    phrases = iter([ref.phrase for ref in parse_got(record.got).refs
                    if ref.got_span not in {obj.span for obj in placed} for _ in ref.boxes])
    present = getattr(record, "step_images", None) or [True] * len(steps)
    # image index each edit applies to: how many images there are before it, less one
    on_image = [sum(present[:n]) for n in range(len(steps))]
    regions = [(on_image[n], box, next(phrases)) for n, step in enumerate(steps) for box in step.regions]
    expected = []
    for n, info in enumerate(record.images):
        expected += [region for region in regions if region[0] == n]
        expected += [(n, box, obj.phrase) for obj in placed if obj.image == info.role for box in obj.boxes]
    return expected


def test_the_sample_edit_shards_place_other_objects_on_their_image() -> None:
    placed = [(s.record.key, obj) for s in iter_samples(SHARDS_DIR / "edit") for obj in s.record.objects or []]
    assert [(obj.phrase, obj.image) for _, obj in placed] == [("a potted basil plant", "source")]


@pytest.fixture(scope="module", params=KINDS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    out = tmp_path_factory.mktemp("view") / f"{request.param}.html"
    result = write_preview(SHARDS_DIR / request.param, out)
    samples = list(iter_samples(SHARDS_DIR / request.param))
    assert result.path == out and result.samples == len(samples) and not result.truncated
    return samples, parse_page(out)


def test_one_labelled_box_div_per_structured_box_with_percent_geometry(rendered: Rendered) -> None:
    samples, page = rendered
    assert page.sections == [s.key for s in samples]
    expected = [(s.key, image, geometry(box), label) for s in samples for image, box, label in expected_boxes(s)]
    drawn = [(b.section, b.image, {k: b.style[k] for k in ("left", "top", "width", "height")}, b.label)
             for b in page.boxes]
    assert drawn == expected


def test_images_are_embedded_bytes_in_record_order(rendered: Rendered) -> None:
    samples, page = rendered
    for sample in samples:
        srcs = page.images[sample.key]
        assert len(srcs) == len(sample.record.images)
        for src, info in zip(srcs, sample.record.images):
            mime = {"JPEG": "image/jpeg", "PNG": "image/png"}[info.format]
            assert src.startswith(f"data:{mime};base64,")
            assert base64.b64decode(src.split(",", 1)[1]) == sample.images[info.member]


def test_box_label_and_colour_match_the_highlighted_phrase(rendered: Rendered) -> None:
    samples, page = rendered
    mark_colours = {text: style.rsplit("solid ", 1)[1] for style, text in page.marks}
    assert len(page.marks) == sum(len(s.record.got.split("<|object_ref_start|>")) - 1 for s in samples)
    for box in page.boxes:
        assert box.label in mark_colours, box.label
        assert box.style["border-color"] == mark_colours[box.label]
    if samples[0].record.kind == "t2i":
        colours = [b.style["border-color"] for b in page.boxes if b.section == samples[0].key]
        labels = [b.label for b in page.boxes if b.section == samples[0].key]
        assert len(set(colours)) == len(set(labels)) == len(samples[0].record.objects)


def test_page_is_self_contained_without_script(rendered: Rendered) -> None:
    _, page = rendered
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    assert all(src.startswith("data:image/") for srcs in page.images.values() for src in srcs)


def _hostile_sample(tmp_path: Path) -> tuple[Path, str, str]:
    """A T2I record whose phrase and caption hold HTML, written by the project's ShardWriter."""
    base = next(iter_samples(SHARDS_DIR / "t2i"))
    phrase = "<b>bold</b> cat"
    plain = f'A photo of a {phrase} & a "dog" <script>alert(1)</script>.'
    start = plain.index(phrase)
    box = Box(x1=100, y1=200, x2=600, y2=700)
    got, spans = render_got(plain, [Annotation(start, start + len(phrase), (box,))])
    caption = "<script>alert('caption')</script><|im_end|>\u202egnp.exe\x00"
    record = T2IRecord(**{
        **base.record.model_dump(),
        "key": make_key("t2i", "hostile", "h1"),
        "source": {**base.record.source.model_dump(), "original_caption": caption},
        "got": got, "description": plain,
        "objects": [GroundedObject(phrase=phrase, boxes=[box], span=spans[0])],
    })
    folder = tmp_path / "hostile"
    with ShardWriter(folder) as writer:
        writer.write(record, base.images)
    return folder, phrase, caption


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    folder, phrase, caption = _hostile_sample(tmp_path)
    result = write_preview(folder)
    raw = result.path.read_text(encoding="utf-8")
    assert "<b>" not in raw and "<script" not in raw
    assert "&lt;b&gt;bold&lt;/b&gt; cat" in raw and "&lt;script&gt;alert(&#x27;caption&#x27;)" in raw
    # the verbatim caption's control token shows as text, its bidi override and NUL as visible code points
    assert "&lt;|im_end|&gt;[U+202E]gnp.exe[U+0000]" in raw and "\u202e" not in raw and "\x00" not in raw
    page = parse_page(result.path)
    assert [b.label for b in page.boxes] == [phrase]
    assert page.boxes[0].style["left"] == "10.0%" and page.boxes[0].style["height"] == "50.0%"
    assert [text for _, text in page.marks] == [phrase]
    assert "script" not in page.tags and "b" not in page.tags


def test_limit_stops_the_stream_and_page_sits_beside_the_shards(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    with ShardWriter(folder, samples_per_shard=2) as writer:
        for kind in KINDS:
            for sample in iter_samples(SHARDS_DIR / kind):
                writer.write(sample.record, sample.images)
    result = write_preview(folder, limit=4)
    assert result.path == folder / "preview.html"
    assert (result.samples, result.truncated) == (4, True)
    assert len(parse_page(result.path).sections) == 4
    assert validate_paths([folder]).ok, "the page must not disturb the shard folder"
    assert not list(folder.glob(".*.partial"))


def test_large_images_are_embedded_as_thumbnails() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1000), (10, 120, 200)).save(buffer, "PNG")
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    info = ImageInfo(role="image", member="png", sha256=digest, width=2000, height=1000, format="PNG",
                     original_sha256=digest)
    mime, payload = embeddable_image(data, info)
    with Image.open(io.BytesIO(payload)) as thumb:
        assert (mime, thumb.format, thumb.size) == ("image/jpeg", "JPEG", (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2))


def test_cli_writes_default_page_and_honours_out_and_limit(tmp_path: Path) -> None:
    folder = tmp_path / "t2i"
    shutil.copytree(SHARDS_DIR / "t2i", folder)
    runner = CliRunner()
    result = runner.invoke(app, ["view", str(folder)])
    assert result.exit_code == 0, result.output
    assert len(parse_page(folder / "preview.html").sections) == 3

    page = tmp_path / "pages" / "edit.html"
    tar = SHARDS_DIR / "edit" / "got-000000.tar"
    result = runner.invoke(app, ["view", str(tar), "--out", str(page), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "limit reached" in result.output
    assert len(parse_page(page).sections) == 1


def test_cli_reports_a_missing_input_as_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["view", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "nowhere").exists()
