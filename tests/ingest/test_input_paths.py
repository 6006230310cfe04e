"""Path confinement: every source reads only regular files under its allowed roots (got_data/ingest/paths.py).

A temp file outside the input stands for /proc/self/environ: its text must never reach an item,
a caption, an instruction or a message.
"""

from __future__ import annotations

import json
import os

import pytest

from got_data.cli.annotate import AnnotateSettings, annotate_edit, annotate_t2i
from got_data.errors import InputError
from got_data.ingest import (
    EditInputs,
    FolderSource,
    ImageRejected,
    ManifestSource,
    MultiTurnInputs,
    PathImage,
    T2IInputs,
    load_input_image,
    open_source,
)
from got_data.ingest.captions import read_caption_file
from got_data.ingest.items import MISSING_FILE
from got_data.ingest.paths import NOT_A_REGULAR_FILE, OUTSIDE_INPUT_ROOT
from tests.ingest.bad_images import encode, gradient

SECRET = "AWS_SECRET_ACCESS_KEY=do-not-publish"


@pytest.fixture
def outside(tmp_path):
    """A tree next to the input: a secret text file and an image, neither part of the input."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "environ").write_text(SECRET)
    (folder / "x.jpg").write_bytes(encode(gradient(), "JPEG"))
    return folder


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(encode(gradient(), "JPEG"))
    return folder


def _leaks(item, outside) -> bool:
    return SECRET in repr(item) or str(outside) in repr(item)


def test_a_sidecar_linked_outside_rejects_its_image_unread(root, outside):
    (root / "photo.txt").symlink_to(outside / "environ")
    (item,) = FolderSource(root, T2IInputs())
    assert item.problem[0] == OUTSIDE_INPUT_ROOT and "photo.txt" in item.problem[1]
    assert item.caption is None and item.source_info().original_caption is None
    assert not _leaks(item, outside)


def test_folder_images_linked_outside_fifos_and_dangling_links_are_rejects(root, outside):
    (root / "out.jpg").symlink_to(outside / "x.jpg")
    (root / "sub").mkdir()
    (root / "sub" / "real.png").write_bytes(encode(gradient(), "PNG"))
    (root / "inside.png").symlink_to(root / "sub" / "real.png")
    (root / "inside.txt").symlink_to(root / "sub" / "caption.txt")
    (root / "sub" / "caption.txt").write_text("a linked caption inside the folder")
    (root / "gone.jpg").symlink_to(root / "nothing.jpg")
    os.mkfifo(root / "pipe.jpg")
    (root / "dir.jpg").symlink_to(root / "sub", target_is_directory=True)
    items = {item.input_ref: item for item in FolderSource(root, T2IInputs())}
    assert set(items) == {"dir.jpg", "gone.jpg", "inside.png", "out.jpg", "photo.jpg", "pipe.jpg", "sub/real.png"}
    assert items["out.jpg"].problem[0] == OUTSIDE_INPUT_ROOT
    assert items["pipe.jpg"].problem == (NOT_A_REGULAR_FILE, "pipe.jpg is a FIFO, not a regular file")
    assert items["dir.jpg"].problem[0] == NOT_A_REGULAR_FILE
    assert items["gone.jpg"].problem[0] == MISSING_FILE
    linked = items["inside.png"]
    assert linked.problem is None and linked.caption == "a linked caption inside the folder"
    assert load_input_image(linked).data == (root / "sub" / "real.png").read_bytes()
    assert not any(_leaks(item, outside) for item in items.values())


def test_a_file_swapped_for_a_fifo_after_listing_is_refused_when_read(root):
    (item,) = FolderSource(root, T2IInputs())
    (root / "photo.jpg").unlink()
    os.mkfifo(root / "photo.jpg")  # reading would block forever without the check at open
    with pytest.raises(ImageRejected) as caught:
        load_input_image(item)
    assert caught.value.reason == NOT_A_REGULAR_FILE and str(root) not in caught.value.detail


def test_a_folder_swapped_for_a_link_after_listing_is_not_followed(root, outside):
    (root / "sub").mkdir()
    (root / "sub" / "x.jpg").write_bytes(encode(gradient(size=(64, 40)), "JPEG"))
    (root / "sub" / "x.txt").write_text("inside")
    item = next(i for i in FolderSource(root, T2IInputs()) if i.input_ref == "sub/x.jpg")
    (root / "sub").rename(root / ".old")
    (root / "sub").symlink_to(outside, target_is_directory=True)  # outside/x.jpg is now at the listed path
    with pytest.raises(ImageRejected) as caught:
        load_input_image(item)
    assert caught.value.reason == OUTSIDE_INPUT_ROOT and "appeared" in caught.value.detail
    (outside / "x.txt").write_text(SECRET)
    assert read_caption_file(str(root / ".old" / "x.txt")) == ("inside", None)
    caption, error = read_caption_file(str(root / "sub" / "x.txt"))
    assert caption is None and "symbolic link" in error


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_manifest_rows_may_not_point_outside_its_folder(root, outside):
    (root / "imgs").mkdir()
    (root / "imgs" / "a.jpg").write_bytes(encode(gradient(), "JPEG"))
    (root / "imgs" / "link.jpg").symlink_to(root / "photo.jpg")
    (root / "imgs" / "out.jpg").symlink_to(outside / "x.jpg")
    os.mkfifo(root / "fifo.jpg")
    rows = [
        {"image": "imgs/a.jpg", "caption": None},
        {"image": str(root / "photo.jpg")},  # absolute, but inside: fine
        {"image": (root / "imgs" / "a.jpg").as_uri()},  # file:// inside: fine
        {"image": "imgs/link.jpg"},  # a link whose target is inside: fine
        {"image": str(outside / "x.jpg")},
        {"image": "../elsewhere/x.jpg"},
        {"image": (outside / "x.jpg").as_uri()},
        {"image": "imgs/out.jpg"},
        {"image": "imgs/../../elsewhere/environ", "caption": "c"},
        {"image": "fifo.jpg"},
        {"image": {"bytes": None, "path": str(outside / "x.jpg")}},
    ]
    items = list(ManifestSource(write_jsonl(root / "m.jsonl", rows), T2IInputs()))
    assert [item.problem for item in items[:4]] == [None] * 4
    assert all(isinstance(item.image, PathImage) for item in items[:4])
    assert load_input_image(items[3]).data == (root / "photo.jpg").read_bytes()
    for item in items[4:9] + items[10:]:
        assert item.problem[0] == OUTSIDE_INPUT_ROOT, item.input_ref
        assert "manifest's folder" in item.problem[1] and "--allow-paths-outside" in item.problem[1]
    assert items[9].problem[0] == NOT_A_REGULAR_FILE
    assert not any(_leaks(item, outside) for item in items)
    assert items[8].caption == "c"  # the row's own caption is kept for the rejects file


def test_allowing_a_folder_lets_rows_point_there(root, outside):
    manifest = write_jsonl(root / "m.jsonl", [{"image": str(outside / "x.jpg")}, {"image": "/etc/hostname"}])
    allowed, still_out = ManifestSource(manifest, T2IInputs(), allow_outside=[outside])
    assert allowed.problem is None and load_input_image(allowed).data == (outside / "x.jpg").read_bytes()
    assert still_out.problem[0] == OUTSIDE_INPUT_ROOT
    with pytest.raises(InputError, match="--allow-paths-outside .*not an existing folder"):
        ManifestSource(manifest, T2IInputs(), allow_outside=[outside / "typo"])


def test_edit_folder_instruction_and_images_linked_outside_are_refused(tmp_path, outside):
    root = tmp_path / "pairs"
    for key in ("ok", "instr", "img", "kind"):
        (root / key).mkdir(parents=True)
        (root / key / "source.png").write_bytes(encode(gradient(), "PNG"))
        (root / key / "target.png").write_bytes(encode(gradient(size=(64, 40)), "PNG"))
        (root / key / "instruction.txt").write_text("make it brighter")
    (root / "instr" / "instruction.txt").unlink()
    (root / "instr" / "instruction.txt").symlink_to(outside / "environ")
    (root / "img" / "target.png").unlink()
    (root / "img" / "target.png").symlink_to(outside / "x.jpg")
    (root / "kind" / "edit_type.txt").symlink_to(outside / "environ")
    items = {item.input_ref: item for item in FolderSource(root, EditInputs())}
    assert items["ok"].problem is None
    assert items["instr"].problem[0] == OUTSIDE_INPUT_ROOT and "instr/instruction.txt" in items["instr"].problem[1]
    assert items["instr"].source_info().original_caption is None
    assert items["img"].problem[0] == OUTSIDE_INPUT_ROOT and items["img"].problem[1].startswith("target image:")
    assert items["kind"].problem[0] == OUTSIDE_INPUT_ROOT
    assert not any(_leaks(item, outside) for item in items.values())


def test_edit_and_multiturn_manifests_confine_every_image(root, outside):
    pairs = write_jsonl(root / "pairs.jsonl", [
        {"source": "photo.jpg", "target": "../elsewhere/x.jpg", "instruction": "add a cat"},
        {"source": str(outside / "x.jpg"), "target": "photo.jpg", "instruction": "add a cat"},
    ])
    target_out, source_out = ManifestSource(pairs, EditInputs())
    assert target_out.problem[0] == OUTSIDE_INPUT_ROOT and target_out.problem[1].startswith("target image:")
    assert source_out.problem[0] == OUTSIDE_INPUT_ROOT and source_out.problem[1].startswith("source image:")
    sequences = write_jsonl(root / "seq.jsonl", [{"source": "photo.jpg", "turns": [
        {"instruction": "add a cat", "image": "photo.jpg"},
        {"instruction": "add a dog", "image": (outside / "x.jpg").as_uri()},
    ]}])
    (item,) = ManifestSource(sequences, MultiTurnInputs())
    assert item.problem[0] == OUTSIDE_INPUT_ROOT and item.problem[1].startswith("turn 2 image:")
    (allowed,) = ManifestSource(sequences, MultiTurnInputs(), allow_outside=[outside])
    assert allowed.problem is None


def test_shards_linked_outside_the_shard_folder_are_refused_at_open(tmp_path, outside, shard_writer):
    shard = shard_writer(outside / "s.tar", [("k", {"jpg": encode(gradient(), "JPEG")})])
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "000.tar").symlink_to(shard)
    with pytest.raises(InputError, match=r"shard 000\.tar resolves outside the shards' folder"):
        open_source(folder)
    with pytest.raises(InputError, match="outside"):
        open_source(folder / "000.tar", EditInputs())
    allowed = open_source(folder, allow_outside=[outside])
    assert allowed.location == str(folder.resolve())  # the input's identity is the folder given, not where links lead
    (item,) = allowed
    assert item.problem is None and item.input_ref == "s.tar#k" and str(outside) not in item.input_ref
    os.mkfifo(tmp_path / "pipe.tar")
    with pytest.raises(InputError, match="is a FIFO"):
        open_source(tmp_path / "pipe.tar")


def _settings(input_path, out, allow=None) -> AnnotateSettings:
    return AnnotateSettings(input=str(input_path), out=out, config=None, vlm=None, llm=None, limit=None,
                            samples_per_shard=10, ray_address=None, dataset=None, max_images_in_flight=4,
                            max_input_pixels=64_000_000, allow_paths_outside=allow)


def test_the_annotate_commands_pass_allow_paths_outside_to_their_sources(root, outside, tmp_path):
    manifest = write_jsonl(root / "m.jsonl", [{"image": str(outside / "x.jpg")}])
    (refused,) = annotate_t2i(_settings(manifest, tmp_path / "out"))
    assert refused.problem[0] == OUTSIDE_INPUT_ROOT
    (allowed,) = annotate_t2i(_settings(manifest, tmp_path / "out", allow=[outside]))
    assert allowed.problem is None
    pairs = write_jsonl(root / "pairs.jsonl", [{"source": "photo.jpg", "target": str(outside / "x.jpg"),
                                                "instruction": "add a cat"}])
    (pair,) = annotate_edit(_settings(pairs, tmp_path / "out", allow=[outside]))
    assert pair.problem is None
