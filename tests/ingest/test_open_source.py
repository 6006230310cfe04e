"""open_source picks the source from what the spec is, and explains specs it cannot use."""

from __future__ import annotations

import json

import pytest

from got_data.errors import InputError
from got_data.ingest import FolderSource, ManifestSource, T2IInputs, WebDatasetSource, open_source
from tests.ingest.bad_images import encode, gradient

JPG = encode(gradient(), "JPEG")


@pytest.fixture
def inputs(tmp_path, shard_writer):
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "photos" / "sub" / "a.jpg").write_bytes(JPG)
    (tmp_path / "photos" / "b.JPG").write_bytes(JPG)
    (tmp_path / "list.jsonl").write_text(json.dumps({"path": "photos/b.JPG", "text": "t"}) + "\n")
    for i in range(3):
        shard_writer(tmp_path / "shards" / f"{i:05d}.tar", [(f"{i}0", {"jpg": JPG, "txt": b"c"})])
    (tmp_path / "shards" / "00000_stats.json").write_text("{}")
    return tmp_path


def test_each_kind_of_input(inputs):
    folder = open_source(inputs / "photos")
    assert isinstance(folder, FolderSource) and folder.dataset == "photos" and folder.count() == 2
    manifest = open_source(str(inputs / "list.jsonl"), T2IInputs(image_column="path", caption_column="text"))
    assert isinstance(manifest, ManifestSource) and [i.caption for i in manifest] == ["t"]
    shards = open_source(inputs / "shards")
    assert isinstance(shards, WebDatasetSource) and shards.dataset == "shards"
    assert [i.input_ref for i in shards] == ["00000.tar#00", "00001.tar#10", "00002.tar#20"]
    one = open_source(inputs / "shards" / "00001.tar", dataset="laion")
    assert one.dataset == "laion" and [i.input_ref for i in one] == ["00001.tar#10"]


def test_globs_and_brace_ranges_of_shards(inputs):
    globbed = open_source(str(inputs / "shards" / "0000[12].tar"))
    assert [i.input_ref for i in globbed] == ["00001.tar#10", "00002.tar#20"]
    braced = open_source(str(inputs / "shards" / "{00000..00001}.tar"))
    assert [i.input_ref for i in braced] == ["00000.tar#00", "00001.tar#10"]
    assert braced.dataset == "shards"
    with pytest.raises(InputError, match="no files match"):
        open_source(str(inputs / "shards" / "*.tgz"))
    with pytest.raises(InputError, match="not .tar shards"):
        open_source(str(inputs / "shards" / "*"))


@pytest.mark.parametrize("url", ["http://host/data.tar", "https://host/images/", "ftp://host/m.jsonl"])
def test_urls_are_refused_with_advice(url):
    with pytest.raises(InputError, match="URLs are not fetched here; download the images first, e.g. with img2dataset"):
        open_source(url)


def test_unusable_specs(inputs):
    with pytest.raises(InputError, match="does not exist"):
        open_source(inputs / "nowhere")
    with pytest.raises(InputError, match="single image; pass the folder"):
        open_source(inputs / "photos" / "b.JPG")
    (inputs / "data.csv").write_text("image\n")
    with pytest.raises(InputError, match="unknown kind of file '.csv'"):
        open_source(inputs / "data.csv")
    with pytest.raises(InputError, match="no image column 'image'"):
        open_source(inputs / "list.jsonl")


def test_a_folder_with_images_and_tars_is_an_image_folder(inputs, shard_writer):
    shard_writer(inputs / "photos" / "extra.tar", [("k", {"jpg": JPG})])
    assert isinstance(open_source(inputs / "photos"), FolderSource)
