"""Inputs in a bucket (a real S3 server, SeaweedFS): manifests, the image objects they name, shards and
edit inputs read through the URI layer like their local twins, and the root policy's URI side: a
manifest in s3://b/p/ reads objects under s3://b/p/ only, unless --allow-paths-outside names more."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from got_data import uri
from got_data.errors import InputError
from got_data.ingest import (
    EditInputs,
    FolderSource,
    ImageReadError,
    ManifestSource,
    MultiTurnInputs,
    T2IInputs,
    WebDatasetSource,
    open_source,
)
from got_data.ingest.items import MISSING_FILE, MISSING_IMAGE_PATH, URL_NOT_SUPPORTED, ObjectImage
from got_data.ingest.paths import OUTSIDE_INPUT_ROOT, InputRoots, PathRefused
from got_data.shards.tar_policy import LINK_MEMBER
from tests.hostile_tars import regular, symlink, write_tar
from tests.ingest.bad_images import encode, gradient

JPG = encode(gradient(), "JPEG")
PNG = encode(gradient().rotate(180), "PNG")


def upload_tree(folder, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            uri.upload(path, f"{prefix}/{path.relative_to(folder).as_posix()}")


def outcome(source) -> list[tuple]:
    """What a source yields, comparable between a local input and its copy in a bucket."""
    rows = []
    for item in source:
        images = {role: image.read() for role, image in item.image_sources().items()}
        rows.append((item.input_ref, item.problem and item.problem[0], item.source_info().original_caption, images))
    return rows


def test_a_manifest_in_a_bucket_reads_the_objects_under_its_prefix_only(s3_bucket, tmp_path):
    uri.write_bytes(f"{s3_bucket}/p/imgs/a.jpg", JPG)
    uri.write_bytes(f"{s3_bucket}/p/imgs/b.png", PNG)
    uri.write_bytes(f"{s3_bucket}/other/c.jpg", JPG)
    rows = [
        {"image": "imgs/a.jpg", "caption": "relative to the manifest's prefix"},
        {"image": f"{s3_bucket}/p/imgs/b.png"},
        {"image": f"{s3_bucket}/other/c.jpg"},
        {"image": "../other/c.jpg"},
        {"image": f"{s3_bucket}/p/../other/c.jpg"},
        {"image": "/etc/passwd"},
        {"image": "https://example.com/d.jpg"},
        {"image": "imgs/missing.jpg"},
    ]
    manifest = f"{s3_bucket}/p/list.jsonl"
    uri.write_text(manifest, "".join(json.dumps(r) + "\n" for r in rows))

    source = open_source(manifest)
    assert isinstance(source, ManifestSource) and source.location == manifest and source.dataset == "list"
    items = list(source)
    assert source.count() == len(items) == 8
    assert [i.input_ref for i in items] == [f"list.jsonl#row={n}" for n in range(8)]
    a, b, other, up, dotted, host, http, missing = items
    assert a.caption == "relative to the manifest's prefix" and a.image.read() == JPG
    assert isinstance(b.image, ObjectImage) and b.image.read() == PNG
    for refused in (other, up, dotted, host):
        assert refused.problem[0] == OUTSIDE_INPUT_ROOT and refused.image is None
        assert "--allow-paths-outside" in refused.problem[1] and s3_bucket not in refused.problem[1]
    assert http.problem[0] == URL_NOT_SUPPORTED
    with pytest.raises(ImageReadError) as gone:  # not looked up per row: it fails where it is read
        missing.image.read()
    assert gone.value.reason == MISSING_FILE

    widened = list(open_source(manifest, allow_outside=[f"{s3_bucket}/other"]))
    assert [i.problem is None for i in widened[2:5]] == [True, True, True]
    assert all(i.image.read() == JPG for i in widened[2:5])
    assert widened[5].problem[0] == OUTSIDE_INPUT_ROOT  # a local path still needs a local root
    with pytest.raises(InputError, match="no objects under that prefix"):
        open_source(manifest, allow_outside=[f"{s3_bucket}/typo"])
    with pytest.raises(InputError, match="not a folder or a storage prefix"):
        open_source(manifest, allow_outside=["https://example.com/x"])


def test_a_local_manifest_reads_objects_under_an_allowed_prefix(s3_bucket, tmp_path):
    uri.write_bytes(f"{s3_bucket}/imgs/a.jpg", JPG)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": f"{s3_bucket}/imgs/a.jpg"}) + "\n")
    (refused,) = open_source(manifest)
    assert refused.problem[0] == OUTSIDE_INPUT_ROOT
    (allowed,) = open_source(manifest, allow_outside=[f"{s3_bucket}/imgs"])
    assert allowed.problem is None and allowed.image.read() == JPG


def test_a_parquet_manifest_in_a_bucket(s3_bucket, tmp_path):
    uri.write_bytes(f"{s3_bucket}/set/a.jpg", JPG)
    local = tmp_path / "set.parquet"
    pq.write_table(pa.table({"image": pa.array([JPG, None], pa.binary()), "path": [None, "a.jpg"],
                             "caption": ["embedded", "by path"]}), local)
    uri.upload(local, f"{s3_bucket}/set/set.parquet")
    source = open_source(f"{s3_bucket}/set/set.parquet")
    assert source.count() == 2
    embedded, no_image = source
    assert embedded.image.read() == JPG and embedded.caption == "embedded"
    assert no_image.problem[0] == MISSING_IMAGE_PATH
    _, by_path = open_source(f"{s3_bucket}/set/set.parquet", T2IInputs(image_column="path"))
    assert by_path.image.read() == JPG and by_path.caption == "by path"


def test_shards_in_a_bucket_read_like_local_ones(s3_bucket, tmp_path, shard_writer):
    shards = tmp_path / "shards"
    for i in range(3):
        shard_writer(shards / f"{i:05d}.tar", [(f"{i}0", {"jpg": JPG, "txt": b"cap"}), (f"{i}1", {"png": PNG})])
    write_tar(shards / "00003.tar", regular("30.jpg", JPG), symlink("31.jpg", "/etc/passwd"))
    upload_tree(shards, f"{s3_bucket}/shards")

    local = outcome(open_source(shards))
    prefix = open_source(f"{s3_bucket}/shards")
    assert isinstance(prefix, WebDatasetSource) and prefix.location == f"{s3_bucket}/shards"
    assert prefix.dataset == "shards" and outcome(prefix) == local
    assert local[-1][:2] == ("00003.tar#31", LINK_MEMBER)
    assert outcome(open_source(f"{s3_bucket}/shards/*.tar")) == local
    assert outcome(open_source(f"{s3_bucket}/shards/{{00001..00002}}.tar")) == local[2:6]
    one = open_source(f"{s3_bucket}/shards/00001.tar")
    assert one.dataset == "00001" and [i.input_ref for i in one] == ["00001.tar#10", "00001.tar#11"]
    with pytest.raises(InputError, match="no files match"):
        open_source(f"{s3_bucket}/shards/*.tgz")
    with pytest.raises(InputError, match="does not exist"):
        open_source(f"{s3_bucket}/nothing/here.tar")
    uri.write_bytes(f"{s3_bucket}/cut/00000.tar", (shards / "00000.tar").read_bytes()[:1000])
    with pytest.raises(InputError, match="00000.tar"):
        list(open_source(f"{s3_bucket}/cut/00000.tar"))


def test_edit_inputs_in_a_bucket_read_like_local_ones(s3_bucket, tmp_path, shard_writer):
    pairs = tmp_path / "pairs"
    for key, instruction in (("k1", "make it red"), ("k2", None)):
        (pairs / key).mkdir(parents=True)
        (pairs / key / "source.jpg").write_bytes(JPG)
        (pairs / key / "target.png").write_bytes(PNG)
        if instruction:
            (pairs / key / "instruction.txt").write_text(instruction)
    (pairs / "k1" / "edit_type.txt").write_text("recolour")
    upload_tree(pairs, f"{s3_bucket}/pairs")
    bucket_pairs = open_source(f"{s3_bucket}/pairs", EditInputs())
    assert isinstance(bucket_pairs, FolderSource)
    assert outcome(bucket_pairs) == outcome(open_source(pairs, EditInputs()))
    assert [i.problem is None for i in bucket_pairs] == [True, False]
    assert next(iter(bucket_pairs)).turns[0].edit_type == "color"

    shard = shard_writer(tmp_path / "pair-shards" / "00000.tar",
                         [("k1", {"source.jpg": JPG, "target.png": PNG, "instruction.txt": b"flip it"})])
    uri.upload(shard, f"{s3_bucket}/pair-shards/00000.tar")
    assert outcome(open_source(f"{s3_bucket}/pair-shards", EditInputs())) == outcome(open_source(shard, EditInputs()))

    sequences = tmp_path / "seq"
    sequences.mkdir()
    (sequences / "a.jpg").write_bytes(JPG)
    (sequences / "b.png").write_bytes(PNG)
    (sequences / "seq.jsonl").write_text(json.dumps({"source": "a.jpg", "turns": [
        {"instruction": "add a cat", "image": "b.png"}, {"instruction": "now a dog", "image": "a.jpg"}]}) + "\n")
    upload_tree(sequences, f"{s3_bucket}/seq")
    bucket_sequences = open_source(f"{s3_bucket}/seq/seq.jsonl", MultiTurnInputs())
    assert outcome(bucket_sequences) == outcome(open_source(sequences / "seq.jsonl", MultiTurnInputs()))
    (sequence,) = bucket_sequences
    assert sequence.problem is None and sequence.roles() == ["source", "turn1", "turn2"]
    with pytest.raises(InputError, match="multi-turn edits are read from a manifest"):
        open_source(f"{s3_bucket}/pairs", MultiTurnInputs())


def test_object_uris_are_normalised_before_the_prefix_check():
    roots = InputRoots(roots=("s3://b/p",), what="the manifest's folder")
    assert roots.locate("imgs/a#1.jpg", "s3://b/p") == "s3://b/p/imgs/a#1.jpg"
    assert roots.locate("S3://b/p/./x/../y.jpg", "s3://b/p") == "s3://b/p/y.jpg"
    assert roots.ref("s3://b/p/imgs/a.jpg") == "imgs/a.jpg"
    for escape in ("../q/x.jpg", "s3://b/p/../q/x.jpg", "s3://b/pq/x.jpg", "s3://c/p/x.jpg", "/b/p/x.jpg"):
        with pytest.raises(PathRefused) as refused:
            roots.locate(escape, "s3://b/p")
        assert refused.value.reason == OUTSIDE_INPUT_ROOT, escape
    with pytest.raises(PathRefused) as with_key:
        roots.locate("s3://KEY:SECRET@b/p/x.jpg", "s3://b/p")
    assert with_key.value.reason == URL_NOT_SUPPORTED and "SECRET" not in with_key.value.detail
