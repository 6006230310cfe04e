"""Shard images are parsed only as the format their member name claims: EPS bytes named `jpg` never reach
Ghostscript through `validate` or `view`, and `validate` says the bytes are not what the name claims."""

from __future__ import annotations

import hashlib
import io
import stat
import subprocess

import pytest
from PIL import EpsImagePlugin, Image

from got_data.ingest.images import ACCEPTED_FORMATS
from got_data.ingest.items import IMAGE_EXTENSIONS
from got_data.shards import ShardWriter, validate_paths
from got_data.shards.image_formats import (
    IMAGE_FORMAT_BY_EXTENSION,
    ImageFormatError,
    claimed_format,
    open_claimed,
)
from got_data.view import write_preview

EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1600 1200\n%%EndComments\n"
    b"newpath 0 0 moveto 1600 1200 lineto stroke\nshowpage\n%%EOF\n"
)


@pytest.fixture
def ghostscript_marker(tmp_path, monkeypatch):
    """A stand-in `gs` that only leaves a file behind: Pillow's EPS plugin runs it when it loads EPS."""
    marker = tmp_path / "ghostscript-ran"
    fake = tmp_path / "gs"
    fake.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(fake))
    return marker


def test_the_stand_in_ghostscript_runs_when_every_plugin_is_allowed(ghostscript_marker):
    """The sentinel works: plain Image.open parses EPS and calls Ghostscript."""
    with pytest.raises(subprocess.CalledProcessError), Image.open(io.BytesIO(EPS)) as image:
        image.load()
    assert ghostscript_marker.exists()


def eps_as_jpg_shard(folder, valid_samples):
    """One T2I sample whose `jpg` member holds EPS bytes; the record states their sha256 and a large size."""
    record, _ = valid_samples["t2i"][0]
    info = record.images[0].model_copy(update={"sha256": hashlib.sha256(EPS).hexdigest(), "width": 1600, "height": 1200})
    with ShardWriter(folder) as writer:
        writer.write(record.model_copy(update={"images": [info]}), {"jpg": EPS})
    return folder


def test_validate_reports_eps_bytes_named_jpg_without_running_ghostscript(tmp_path, valid_samples, ghostscript_marker):
    report = validate_paths(eps_as_jpg_shard(tmp_path / "shards", valid_samples))
    assert report.kinds() == {"image_format"}
    assert "not a JPEG image" in report.issues[0].reason
    assert not ghostscript_marker.exists()


def test_view_never_hands_eps_bytes_to_ghostscript(tmp_path, valid_samples, ghostscript_marker):
    shards = eps_as_jpg_shard(tmp_path / "shards", valid_samples)
    result = write_preview(shards)  # the sample is shown with its error, the page still written
    assert result.invalid >= 1
    assert "not a JPEG image" in result.path.read_text(encoding="utf-8")
    assert not ghostscript_marker.exists()


def test_validate_reports_png_bytes_in_a_jpg_member(tmp_path, valid_samples):
    record, images = valid_samples["edit"][0]
    png = images["source.png"]
    info = record.images[0].model_copy(update={"member": "source.jpg", "format": "JPEG"})
    with ShardWriter(tmp_path / "shards") as writer:
        writer.write(record.model_copy(update={"images": [info, record.images[1]]}),
                     {"source.jpg": png, "target.png": images["target.png"]})
    report = validate_paths(tmp_path / "shards")
    assert report.kinds() == {"image_format"}
    assert report.issues[0].reason.startswith("source.jpg: the bytes are not a JPEG image")


@pytest.mark.parametrize("name, fmt", [
    ("jpg", "JPEG"), ("source.png", "PNG"), ("turn3.JPEG", "JPEG"), ("photos/cat.Tif", "TIFF"), ("a.b.webp", "WEBP"),
])
def test_claimed_format_reads_the_last_extension(name, fmt):
    assert claimed_format(name) == fmt


@pytest.mark.parametrize("name", ["eps", "source.eps", "picture", "x.png.pdf", ""])
def test_names_claiming_no_known_format_are_refused(name):
    with pytest.raises(ImageFormatError, match="does not name an image format"):
        claimed_format(name)


def test_the_map_covers_exactly_the_formats_and_extensions_ingest_accepts():
    assert set(IMAGE_FORMAT_BY_EXTENSION.values()) == set(ACCEPTED_FORMATS)
    assert set(IMAGE_FORMAT_BY_EXTENSION) == IMAGE_EXTENSIONS


def test_open_claimed_opens_the_claimed_format(valid_samples):
    _, images = valid_samples["edit"][0]
    with open_claimed(images["source.png"], "source.png") as image:
        assert (image.format, image.size) == ("PNG", (64, 64))
