"""WebDatasetSource: img2dataset-style shards streamed and grouped by key."""

from __future__ import annotations

import json
import tarfile

import pytest

from got_data.errors import InputError
from got_data.ingest import BytesImage, T2IInputs, WebDatasetSource, load_input_image
from got_data.ingest.items import MISSING_FILE
from got_data.ingest.webdataset import split_member_name
from tests.ingest.bad_images import encode, gradient

JPG = encode(gradient(), "JPEG")
PNG = encode(gradient(), "PNG")


def meta(**fields):
    return json.dumps({"url": "http://example.com/x.jpg", "key": "k", **fields}).encode()


def test_img2dataset_shards_with_txt_and_json_captions(tmp_path, shard_writer):
    shard_writer(tmp_path / "shards" / "00001.tar", [
        ("000010000", {"jpg": JPG, "json": meta(caption="only in json")}),
    ])
    shard_writer(tmp_path / "shards" / "00000.tar", [
        ("000000000", {"jpg": JPG, "txt": b"from txt", "json": meta(caption="json loses to txt")}),
        ("000000001", {"png": PNG, "json": meta(caption=None)}),
        ("000000002", {"jpg": JPG, "txt": b"\xff\xfe bad", "npy": b"\x00" * 64}),
        ("000000003", {"json": meta(caption="no image downloaded")}),
        ("000000004", {"jpg": JPG, "json": b"{broken"}),
    ])
    source = WebDatasetSource([tmp_path / "shards" / "00001.tar", tmp_path / "shards" / "00000.tar"], T2IInputs())
    assert source.dataset == "shards" and source.count() is None
    items = list(source)
    assert [i.input_ref for i in items] == [
        "00000.tar#000000000", "00000.tar#000000001", "00000.tar#000000002", "00000.tar#000000003",
        "00000.tar#000000004", "00001.tar#000010000",
    ]
    txt, png, bad_txt, no_image, bad_json, json_only = items
    assert txt.caption == "from txt" and isinstance(txt.image, BytesImage) and txt.image.read() == JPG
    assert png.caption is None and png.caption_error is None and png.image.read() == PNG
    assert bad_txt.caption is None and bad_txt.caption_error.startswith("invalid_utf8")
    assert no_image.image is None and no_image.problem[0] == MISSING_FILE and no_image.caption == "no image downloaded"
    assert bad_json.caption is None and bad_json.caption_error.startswith("invalid_json")
    assert json_only.caption == "only in json"
    assert load_input_image(txt).data == JPG


def test_single_shard_dataset_name_and_nested_keys(tmp_path, shard_writer):
    shard_writer(tmp_path / "part-7.tar", [("dir/sub/img.01", {"jpg": JPG, "txt": b"nested"})])
    source = WebDatasetSource([tmp_path / "part-7.tar"], T2IInputs(), dataset=None)
    (item,) = source
    assert source.dataset == "part-7"
    assert item.input_ref == "part-7.tar#dir/sub/img"
    assert WebDatasetSource([tmp_path / "part-7.tar"], T2IInputs(), dataset="laion").dataset == "laion"


def test_member_name_rule():
    assert split_member_name("000001.jpg") == ("000001", "jpg")
    assert split_member_name("a.b/000001.seg.PNG") == ("a.b/000001", "seg.png")
    assert split_member_name("README") == ("README", "")


def test_non_adjacent_members_are_an_error(tmp_path, shard_writer):
    shard = shard_writer(tmp_path / "s.tar", [("a", {"jpg": JPG}), ("b", {"jpg": JPG}), ("a", {"txt": b"late"})])
    with pytest.raises(InputError, match="not adjacent"):
        list(WebDatasetSource([shard], T2IInputs()))


def test_a_shard_cut_anywhere_before_its_end_marker_is_an_error(tmp_path, shard_writer):
    """tarfile alone stops silently at a cut header; the source must notice."""
    shard = shard_writer(tmp_path / "good.tar", [(f"{i:04d}", {"jpg": JPG, "txt": b"x", "npy": b"1" * 700})
                                                 for i in range(3)])
    data = shard.read_bytes()
    with tarfile.open(shard) as tar:
        last = tar.getmembers()[-1]
    end_marker = last.offset_data + -(-last.size // 512) * 512
    assert len(list(WebDatasetSource([shard], T2IInputs()))) == 3
    cut = tmp_path / "cut.tar"
    for size in sorted({*range(512, end_marker + 512, 512), *range(100, end_marker, 333)}):
        cut.write_bytes(data[:size])
        with pytest.raises(InputError, match="cut.tar"):
            list(WebDatasetSource([cut], T2IInputs()))
    cut.write_bytes(data[: end_marker + 512])  # one zero block is enough, as for GNU tar
    assert len(list(WebDatasetSource([cut], T2IInputs()))) == 3


def test_damaged_shards_fail_with_the_shard_named(tmp_path, shard_writer):
    shard = shard_writer(tmp_path / "good.tar", [(f"{i:04d}", {"jpg": JPG, "txt": b"x"}) for i in range(4)])
    data = bytearray(shard.read_bytes())
    with tarfile.open(shard) as tar:
        second_header = tar.getmembers()[2].offset
    data[second_header : second_header + 100] = b"\xff" * 100
    garbled = tmp_path / "garbled.tar"
    garbled.write_bytes(bytes(data))
    with pytest.raises(InputError, match="garbled.tar"):
        list(WebDatasetSource([garbled], T2IInputs()))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(InputError, match="junk.tar"):
        list(WebDatasetSource([junk], T2IInputs()))
    with pytest.raises(InputError, match="does not exist"):
        WebDatasetSource([tmp_path / "absent.tar"], T2IInputs())


def test_streaming_reads_shards_in_order_without_extracting_unused_members(tmp_path, shard_writer):
    big = b"\x00" * 2_000_000
    shard = shard_writer(tmp_path / "s.tar", [(f"{i:04d}", {"jpg": JPG, "npy": big}) for i in range(3)])
    assert tarfile.is_tarfile(shard)
    items = iter(WebDatasetSource([shard], T2IInputs()))
    first = next(items)
    assert first.input_ref == "s.tar#0000" and len(first.image.read()) == len(JPG)
    assert [i.input_ref for i in items] == ["s.tar#0001", "s.tar#0002"]
