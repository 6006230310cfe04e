"""What an annotate run publishes names no host path and carries no file the job was not given.

One small T2I run through the real runner, Ray and the tiny vLLM engines: photos with EXIF GPS and
appended bytes (published with --strip-metadata), a sidecar caption linked to a secret outside the
input, and a FIFO named like an image.
"""

from __future__ import annotations

import io
import os
import shutil

import pyarrow.parquet as pq
import pytest
from PIL import ExifTags, Image
from rich.console import Console

from got_data.annotate.launch import ModelChoice, annotate
from got_data.annotate.runner import RunOptions
from got_data.ingest import open_source
from got_data.sample_data import sample_images_dir
from got_data.shards.reader import iter_samples
from got_data.spec import load_spec
from tests.annotate.outputs import outcome

pytestmark = pytest.mark.engine

TEST_SPEC = load_spec("t2i-tiny.yaml").source
SECRET = "GITHUB_TOKEN=ghp_do-not-publish"
TRAILER = b"PK\x03\x04 appended archive: private.txt"


def _with_gps(path) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "CameraMaker"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    out = io.BytesIO()
    with Image.open(path) as img:
        img.save(out, format="JPEG", quality=92, exif=exif)
    return out.getvalue() + TRAILER


def test_published_records_and_rejects_hold_no_host_path_secret_or_metadata(vlm_pool, llm_pool, tiny_models,
                                                                            tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for photo in ("astronaut", "coffee", "rocket"):
        (inputs / f"{photo}.jpg").write_bytes(_with_gps(sample_images_dir() / f"{photo}.jpg"))
        shutil.copy(sample_images_dir() / f"{photo}.txt", inputs / f"{photo}.txt")
    (tmp_path / "environ").write_text(SECRET)
    shutil.copy(sample_images_dir() / "cat.jpg", inputs / "leak.jpg")
    (inputs / "leak.txt").symlink_to(tmp_path / "environ")
    os.mkfifo(inputs / "pipe.jpg")
    out = tmp_path / "out"
    options = RunOptions(out_dir=out, samples_per_shard=2, show_progress=False, strip_metadata=True,
                         console=Console(quiet=True))
    annotate(load_spec(TEST_SPEC), open_source(str(inputs)), options, ModelChoice(),
             pools={"vlm": vlm_pool, "llm": llm_pool})

    samples, rejects = outcome(out)
    assert rejects["leak.jpg"] == ("ingest", "outside_input_root")
    assert rejects["pipe.jpg"] == ("ingest", "not_a_regular_file")
    assert samples, f"the tiny models produced no record at all: {rejects}"
    host_paths = (str(tmp_path), str(tiny_models.vlm), str(tiny_models.llm))
    for sample in iter_samples(out):
        text = sample.record.model_dump_json()
        assert SECRET not in text and not any(path in text for path in host_paths), text
        assert {m.name for m in sample.record.provenance.models} == {tiny_models.vlm.name, tiny_models.llm.name}
        (image,) = sample.record.images
        # Kept bytes lose their metadata (`strip_metadata`); bytes re-encoded to the run's image_format carry none.
        assert image.normalization in (["strip_metadata"], ["reencode_png"]), image.normalization
        stored = sample.images[image.member]
        assert b"CameraMaker" not in stored and TRAILER not in stored
    for row in pq.read_table(out / "rejects.parquet").to_pylist():
        assert SECRET not in row["detail"] and not any(path in row["detail"] for path in host_paths), row
