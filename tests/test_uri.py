"""The URI layer against a real S3 server (SeaweedFS on loopback) and the local disk: the same calls,
the same answers; credentials never in a URI or an error; a permanent error is one clear line."""

from __future__ import annotations

import os

import pytest

from got_data import uri
from got_data.uri import StorageError


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path)
    return request.getfixturevalue("s3_bucket") + "/prefix"


def test_write_read_list_delete_round_trip(root):
    uri.write_text(f"{root}/a/one.txt", "one")
    uri.write_bytes(f"{root}/a/two.bin", b"\x00\x01")
    uri.write_text(f"{root}/top.txt", "top")
    assert uri.read_text(f"{root}/a/one.txt") == "one"
    assert uri.read_bytes(f"{root}/a/two.bin", limit=1) == b"\x00"
    assert uri.is_dir(f"{root}/a") and uri.is_file(f"{root}/top.txt")
    assert not uri.exists(f"{root}/missing.txt")
    assert [info.base_name for info in uri.list_dir(root)] == ["a", "top.txt"]
    assert [info.base_name for info in uri.list_dir(f"{root}/a")] == ["one.txt", "two.bin"]
    with uri.open_input(f"{root}/a/one.txt") as f:
        f.seek(1)
        assert f.read() == b"ne"
    uri.delete(f"{root}/a/one.txt")
    uri.delete(f"{root}/a/one.txt")  # absent is fine
    assert not uri.exists(f"{root}/a/one.txt")
    with pytest.raises(FileNotFoundError):
        uri.read_bytes(f"{root}/a/one.txt")
    if root.startswith("/"):
        assert sorted(os.listdir(f"{root}/a")) == ["two.bin"]  # no temporary file left beside it


def test_a_multipart_upload_is_read_back_whole(root, tmp_path):
    big = tmp_path / "big.bin"
    data = os.urandom(12 * 1024 * 1024)  # above the 5 MB part size: a multipart upload on S3
    big.write_bytes(data)
    uri.upload(big, f"{root}/shards/big.bin")
    assert uri.read_bytes(f"{root}/shards/big.bin") == data
    assert [i.base_name for i in uri.list_dir(f"{root}/shards")] == ["big.bin"]


def test_location_names_and_joins():
    loc = uri.location("s3://bucket/some/prefix/")
    assert (loc.uri, loc.path, loc.remote) == ("s3://bucket/some/prefix", "bucket/some/prefix", True)
    child = loc.join("got-000000.tar")
    assert (child.uri, child.name, child.suffix, child.parent.uri) == (
        "s3://bucket/some/prefix/got-000000.tar", "got-000000.tar", ".tar", "s3://bucket/some/prefix")
    local = uri.location("relative/dir")
    assert not local.remote and local.path == os.path.abspath("relative/dir")
    assert uri.location("file:///tmp/x").path == "/tmp/x"


@pytest.mark.parametrize("text", ["https://example.com/a.jpg", "pipe://curl x", "ftp://host/x"])
def test_schemes_that_are_not_storage_are_refused(text):
    with pytest.raises(StorageError, match="not a storage scheme"):
        uri.location(text)


def test_a_uri_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(StorageError) as info:
        uri.location("s3://AKIAEXAMPLE:topsecret@bucket/prefix")
    assert "topsecret" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
    assert "environment" in str(info.value)


def test_wrong_credentials_are_one_line_naming_what_to_check(s3_bucket, monkeypatch):
    uri.write_text(f"{s3_bucket}/x.txt", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-value")
    uri.reset_filesystems()
    try:
        with pytest.raises(StorageError) as info:
            uri.read_text(f"{s3_bucket}/x.txt")
    finally:
        monkeypatch.undo()
        uri.reset_filesystems()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{s3_bucket}/x.txt")
    assert "AWS_SECRET_ACCESS_KEY" in message or "AWS_ACCESS_KEY_ID" in message
    assert "not-the-secret-value" not in message
