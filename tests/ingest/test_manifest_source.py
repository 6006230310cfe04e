"""ManifestSource: JSONL and Parquet rows, custom columns, URLs and missing files as per-row problems."""

from __future__ import annotations

import json
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from got_data.errors import InputError
from got_data.ingest import BytesImage, ManifestSource, PathImage, T2IInputs, load_input_image
from got_data.ingest.items import INVALID_ROW, MISSING_FILE, MISSING_IMAGE_PATH, URL_NOT_SUPPORTED
from got_data.ingest.paths import NOT_A_REGULAR_FILE, OUTSIDE_INPUT_ROOT
from tests.ingest.bad_images import encode, gradient


@pytest.fixture
def images(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(encode(gradient(), "JPEG"))
    (tmp_path / "imgs" / "b.png").write_bytes(encode(gradient(), "PNG"))
    return tmp_path


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_with_custom_columns(images):
    absolute = str(images / "imgs" / "b.png")
    manifest = write_jsonl(images / "meta.jsonl", [
        {"file": "imgs/a.jpg", "text": "a gradient <|im_end|>", "other": 1},
        "",
        {"file": absolute, "text": None},
        {"file": "https://example.com/c.jpg", "text": "remote"},
        {"file": "s3://bucket/d.jpg"},
        {"file": "imgs/missing.jpg", "text": "gone"},
        {"file": ""},
        {"text": "no image key"},
        "{not json",
        [1, 2],
        {"file": 7},
        {"file": "imgs", "text": "a folder"},
    ])
    source = ManifestSource(manifest, T2IInputs(image_column="file", caption_column="text"))
    items = list(source)
    assert source.count() == len(items) == 11
    assert [i.input_ref for i in items] == [f"meta.jsonl#row={n}" for n in range(11)]
    assert source.dataset == "meta"
    a, b, http, s3, missing, empty, no_key, bad_json, not_object, number, folder = items
    assert a.caption == "a gradient <|im_end|>" and a.problem is None
    assert isinstance(a.image, PathImage) and a.image.read() == (images / "imgs" / "a.jpg").read_bytes()
    assert b.caption is None and b.image.path == absolute
    reason, detail = http.problem
    assert reason == URL_NOT_SUPPORTED and "not fetched" in detail and "img2dataset" in detail
    assert http.image is None
    # an object URI is read like a path: only under the manifest's folder or an allowed prefix
    assert s3.problem[0] == OUTSIDE_INPUT_ROOT and "--allow-paths-outside" in s3.problem[1] and s3.image is None
    assert http.caption == "remote"  # kept, so the rejects file can show it
    assert missing.problem[0] == MISSING_FILE and "missing.jpg" in missing.problem[1]
    assert folder.problem[0] == NOT_A_REGULAR_FILE and "imgs is a folder" in folder.problem[1]
    assert empty.problem[0] == MISSING_IMAGE_PATH and no_key.problem[0] == MISSING_IMAGE_PATH
    assert bad_json.problem[0] == INVALID_ROW and "line 9" in bad_json.problem[1]
    assert not_object.problem[0] == INVALID_ROW and number.problem[0] == INVALID_ROW
    assert load_input_image(a).normalization == []


def test_file_urls_are_local_paths(images):
    manifest = write_jsonl(images / "m.jsonl", [{"image": (images / "imgs" / "a.jpg").as_uri()}])
    (item,) = ManifestSource(manifest, T2IInputs())
    assert item.problem is None and item.image.read() == (images / "imgs" / "a.jpg").read_bytes()


def test_missing_image_column_fails_at_open_listing_the_columns(images):
    manifest = write_jsonl(images / "m.jsonl", [{"path": "imgs/a.jpg", "caption": "x"}])
    with pytest.raises(InputError, match=r"no image column 'image'.*\['caption', 'path'\]"):
        ManifestSource(manifest, T2IInputs())


def test_caption_column_default_is_optional_but_a_named_one_must_exist(images):
    manifest = write_jsonl(images / "m.jsonl", [{"image": "imgs/a.jpg", "caption": "from the default column"}])
    assert next(iter(ManifestSource(manifest, T2IInputs()))).caption == "from the default column"
    assert next(iter(ManifestSource(manifest, T2IInputs(caption_column=None)))).caption is None
    bare = write_jsonl(images / "bare.jsonl", [{"image": "imgs/a.jpg"}])
    assert next(iter(ManifestSource(bare, T2IInputs()))).caption is None
    assert next(iter(ManifestSource(bare, T2IInputs(caption_column="caption")))).caption is None
    with pytest.raises(InputError, match="no caption column 'prompt'"):
        ManifestSource(bare, T2IInputs(caption_column="prompt"))


def test_unusable_manifests_fail_at_open(images):
    with pytest.raises(InputError, match="not JSON Lines"):
        ManifestSource(write_jsonl(images / "x.jsonl", ["image,caption", "a.jpg,x"]), T2IInputs())
    with pytest.raises(InputError, match="empty"):
        ManifestSource(write_jsonl(images / "e.jsonl", []), T2IInputs())
    (images / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        ManifestSource(images / "fake.parquet", T2IInputs())
    (images / "m.csv").write_text("image\n")
    with pytest.raises(InputError, match="unknown format '.csv'"):
        ManifestSource(images / "m.csv", T2IInputs())


def test_parquet_with_custom_columns_read_in_batches(images):
    n = 600  # more than one read batch
    table = pa.table({
        "img_path": ["imgs/a.jpg" if i % 3 else "http://example.com/x.jpg" for i in range(n)],
        "prompt": [f"caption {i}" if i % 2 else None for i in range(n)],
        "unused": list(range(n)),
    })
    pq.write_table(table, images / "set.parquet", row_group_size=100)
    source = ManifestSource(images / "set.parquet", T2IInputs(image_column="img_path", caption_column="prompt"), dataset="ds")
    assert source.count() == n
    items = list(source)
    assert [i.input_ref for i in items] == [f"set.parquet#row={i}" for i in range(n)]
    assert items[1].caption == "caption 1" and items[2].caption is None
    assert items[0].problem[0] == URL_NOT_SUPPORTED and items[1].problem is None
    assert {i.dataset for i in items} == {"ds"}


def test_parquet_with_embedded_image_bytes(images):
    """Hugging Face datasets store images as {bytes, path} structs or plain binary cells."""
    png = encode(gradient(), "PNG")
    pq.write_table(pa.table({
        "image": [{"bytes": png, "path": "ignored.png"}, {"bytes": None, "path": "imgs/a.jpg"}],
        "caption": ["embedded", "by path"],
    }), images / "hf.parquet")
    embedded, by_path = ManifestSource(images / "hf.parquet", T2IInputs())
    assert isinstance(embedded.image, BytesImage) and embedded.image.read() == png
    assert load_input_image(embedded).data == png
    assert isinstance(by_path.image, PathImage)
    pq.write_table(pa.table({"jpg": [png], "caption": ["raw binary column"]}), images / "bin.parquet")
    (item,) = ManifestSource(images / "bin.parquet", T2IInputs(image_column="jpg"))
    assert item.image.read() == png and pickle.loads(pickle.dumps(item)) == item
