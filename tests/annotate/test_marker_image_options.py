"""--strip-metadata changes every published image, and the image format and minimum side what is
published, so a resume must keep them (the run marker says so)."""

from __future__ import annotations

import pytest
from PIL import Image

from got_data.annotate.out_marker import RunIdentity, claim_output_dir
from got_data.errors import ShardError
from got_data.ingest import open_source
from got_data.spec import load_spec

MODELS = {"vlm": "Qwen/Qwen2-VL-7B-Instruct", "llm": "Qwen/Qwen2.5-7B-Instruct"}


def test_a_resume_must_keep_strip_metadata(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(images / "a.jpg")
    out = tmp_path / "out"

    def identity(strip: bool) -> RunIdentity:
        return RunIdentity.of(load_spec("t2i.yaml"), open_source(str(images)), MODELS, strip_metadata=strip)

    claim_output_dir(out, identity(strip=True))
    assert claim_output_dir(out, identity(strip=True)) is True
    with pytest.raises(ShardError, match=r"the image options \(--strip-metadata, image_format, min_image_side\)"):
        claim_output_dir(out, identity(strip=False))


def test_a_resume_must_keep_the_image_format(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(images / "a.jpg")
    out = tmp_path / "out"
    png = load_spec("t2i.yaml")
    jpeg = png.model_copy(update={"image_format": "jpeg"})
    claim_output_dir(out, RunIdentity.of(png, open_source(str(images)), MODELS))
    with pytest.raises(ShardError, match="the image options"):
        claim_output_dir(out, RunIdentity.of(jpeg, open_source(str(images)), MODELS))


def test_a_resume_must_keep_the_minimum_image_side(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(images / "a.jpg")
    out = tmp_path / "out"
    spec = load_spec("t2i.yaml")
    claim_output_dir(out, RunIdentity.of(spec, open_source(str(images)), MODELS))
    with pytest.raises(ShardError, match="the image options"):
        claim_output_dir(out, RunIdentity.of(spec.model_copy(update={"min_image_side": 256}),
                                             open_source(str(images)), MODELS))
