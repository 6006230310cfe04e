"""FolderSource: every image under a folder, sidecar captions, deterministic order, lazy handles."""

from __future__ import annotations

import os
import pickle

import pytest

from got_data.errors import InputError
from got_data.ingest import FolderSource, ImageRejected, PathImage, T2IInputs, load_input_image
from tests.ingest.bad_images import EXPECTED_CAPTIONS, IMAGE_CASES, OK, encode, gradient, write_bad_inputs


@pytest.fixture
def bad_folder(tmp_path):
    root = tmp_path / "mixed"
    expected = write_bad_inputs(root)
    return root, expected


def test_finds_every_image_recursively_in_a_stable_order(bad_folder):
    root, expected = bad_folder
    (root / "notes.md").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(encode(gradient(), "JPEG"))
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.jpg").write_bytes(encode(gradient(), "JPEG"))
    source = FolderSource(root, T2IInputs())
    refs = [item.input_ref for item in source]
    assert sorted(refs) == sorted(expected)
    assert refs == [item.input_ref for item in FolderSource(root, T2IInputs())]
    top_level = [r for r in refs if "/" not in r]
    assert top_level == sorted(top_level) and refs[: len(top_level)] == top_level
    assert refs[-1] == "nested/deeper/inside.png"
    assert source.count() == len(expected)
    assert source.dataset == "mixed"
    assert FolderSource(root, T2IInputs(), dataset="mine").dataset == "mine"


def test_every_bad_input_gets_its_expected_outcome(bad_folder):
    """The end-to-end contract the pipelines rely on: item -> prepared image or reject reason."""
    root, expected = bad_folder
    outcomes = {}
    for item in FolderSource(root, T2IInputs()):
        try:
            load_input_image(item)
            outcomes[item.input_ref] = OK
        except ImageRejected as exc:
            outcomes[item.input_ref] = exc.reason
    assert outcomes == expected
    assert {c.outcome for c in IMAGE_CASES} >= {OK, "empty_file", "not_an_image", "truncated_image", "too_small",
                                                "extreme_aspect_ratio", "too_many_pixels"}


def test_sidecar_captions(bad_folder):
    root, _ = bad_folder
    items = {item.input_ref: item for item in FolderSource(root, T2IInputs())}
    for ref, (caption, error_prefix) in EXPECTED_CAPTIONS.items():
        assert items[ref].caption == caption, ref
        if error_prefix is None:
            assert items[ref].caption_error is None, ref
        else:
            assert items[ref].caption_error.startswith(error_prefix), ref
    assert items["palette.png"].caption is None and items["palette.png"].caption_error is None
    assert items["plain.jpg"].source_info().original_caption == items["plain.jpg"].caption


def test_sidecar_must_share_the_folder_and_stem(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Photo.JPG").write_bytes(encode(gradient(), "JPEG"))
    (tmp_path / "a" / "Photo.txt").write_text("right one")
    (tmp_path / "a" / "photo.txt").write_text("other stem (case differs)")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.v2.png").write_bytes(encode(gradient(), "PNG"))
    (tmp_path / "x.v2.txt").write_text("wrong folder")
    items = {i.input_ref: i for i in FolderSource(tmp_path, T2IInputs())}
    assert items["a/Photo.JPG"].caption == "right one"
    assert items["b/x.v2.png"].caption is None


def test_items_hold_paths_not_bytes_and_pickle_cheaply(bad_folder):
    root, _ = bad_folder
    item = next(iter(FolderSource(root, T2IInputs())))
    assert isinstance(item.image, PathImage)
    assert item.image.path == os.path.join(root, item.input_ref)
    assert len(pickle.dumps(item)) < 600
    assert pickle.loads(pickle.dumps(item)).image.read() == (root / item.input_ref).read_bytes()


def test_symlinked_folders_are_not_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.png").write_bytes(encode(gradient(), "PNG"))
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert [i.input_ref for i in FolderSource(tmp_path, T2IInputs())] == ["real/a.png"]


def test_iteration_is_lazy(tmp_path):
    for name in "abc":
        (tmp_path / name).mkdir()
        (tmp_path / name / "img.png").write_bytes(encode(gradient(), "PNG"))
    items = iter(FolderSource(tmp_path, T2IInputs()))
    assert next(items).input_ref == "a/img.png"
    (tmp_path / "c" / "img.png").unlink()  # not yet listed, so the stream sees the change
    assert [i.input_ref for i in items] == ["b/img.png"]


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        FolderSource(tmp_path / "nope", T2IInputs())
