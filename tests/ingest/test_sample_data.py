"""The bundled sample photographs: small, licensed, and plain enough to pass through unchanged."""

from __future__ import annotations

from got_data.ingest import FolderSource, T2IInputs, load_input_image
from got_data.sample_data import sample_images_dir


def test_sample_images_are_small_plain_jpegs_with_some_captions():
    folder = sample_images_dir()
    items = list(FolderSource(folder, T2IInputs()))
    assert 6 <= len(items) <= 8
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) < 300_000
    captioned = [i for i in items if i.caption]
    assert 0 < len(captioned) < len(items)
    assert all(i.caption_error is None for i in items)
    for item in items:
        prepared = load_input_image(item)
        assert prepared.format == "JPEG" and prepared.normalization == []
        assert 256 <= max(prepared.width, prepared.height) <= 384


def test_every_sample_image_has_its_source_and_licence_stated():
    folder = sample_images_dir()
    licences = (folder / "LICENSES.md").read_text(encoding="utf-8")
    for image in sorted(folder.glob("*.jpg")):
        row = next((line for line in licences.splitlines() if f"`{image.name}`" in line), None)
        assert row is not None, image.name
        assert "public domain" in row or "CC0" in row or "no known copyright restrictions" in row
