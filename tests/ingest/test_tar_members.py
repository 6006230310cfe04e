"""Hostile members of img2dataset-style input shards: each sample with a link, a sparse, a non-file, an
oversized or a repeated member becomes one reject item with its reason, and nothing is read past the caps."""

from __future__ import annotations

import tracemalloc

import pytest

from got_data.errors import InputError
from got_data.ingest import EditInputs, T2IInputs, WebDatasetSource, open_source
from got_data.shards.tar_policy import (
    DEFAULT_POLICY,
    DUPLICATE_MEMBER,
    IRREGULAR_MEMBER,
    LINK_MEMBER,
    OVERSIZED_MEMBER,
    SPARSE_MEMBER,
    MemberPolicy,
    parse_caps,
    parse_size,
)
from tests.hostile_tars import MIB, fifo, hardlink, regular, sparse, symlink, write_tar
from tests.ingest.bad_images import encode, gradient

JPG = encode(gradient(), "JPEG")


def hostile_shard(path):
    return write_tar(
        path,
        regular("000.jpg", JPG), regular("000.txt", b"a good sample"),
        sparse("001.jpg", 64 * MIB), regular("001.txt", b"a 10 KB tar, a 64 MB member"),
        symlink("002.jpg", "/etc/passwd"),
        regular("003.jpg", JPG), hardlink("003.txt", "000.txt"),
        regular("004.jpg", JPG), regular("004.jpg", encode(gradient(), "PNG")),
        fifo("005.jpg"),
        symlink("006.npy", "/etc/passwd"), regular("006.jpg", JPG),  # a member we never read may be anything
        regular("007.jpg", JPG), regular("007.txt", b"x" * (2 * MIB)),
    )


def test_each_hostile_member_makes_its_sample_a_reject_item(tmp_path):
    shard = hostile_shard(tmp_path / "shards" / "00000.tar")
    tracemalloc.start()
    try:
        items = list(WebDatasetSource([shard], T2IInputs()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"reading the shard allocated {peak} bytes"
    problems = {item.input_ref.split("#")[1]: item.problem for item in items}
    assert sorted(problems) == [f"{n:03d}" for n in range(8)]
    reasons = {key: problem[0] if problem else None for key, problem in problems.items()}
    assert reasons == {
        "000": None, "001": SPARSE_MEMBER, "002": LINK_MEMBER, "003": LINK_MEMBER, "004": DUPLICATE_MEMBER,
        "005": IRREGULAR_MEMBER, "006": None, "007": OVERSIZED_MEMBER,
    }
    assert "expands to 67108864 bytes" in problems["001"][1]
    assert "symbolic link" in problems["002"][1] and "/etc/passwd" not in problems["002"][1]
    assert "hard link" in problems["003"][1]
    assert "004.jpg appears twice" in problems["004"][1]
    assert "over the 1048576-byte cap for '.txt' members" in problems["007"][1]


def test_caps_are_configurable_per_extension(tmp_path):
    shard = write_tar(tmp_path / "00000.tar", regular("000.jpg", JPG), regular("000.txt", b"caption"))
    policy = DEFAULT_POLICY.with_caps(parse_caps([f"jpg={len(JPG) - 1}"]))
    [item] = open_source(shard, member_policy=policy)
    assert item.problem is not None and item.problem[0] == OVERSIZED_MEMBER
    [item] = open_source(shard, member_policy=DEFAULT_POLICY.with_caps(parse_caps([f"jpg={len(JPG)}"])))
    assert item.problem is None and item.caption == "caption"


def test_edit_shards_reject_link_members(tmp_path):
    shard = write_tar(
        tmp_path / "pairs" / "00000.tar",
        symlink("k1.source.png", "../../secret.png"), regular("k1.target.png", encode(gradient(), "PNG")),
        regular("k1.instruction.txt", b"make it red"),
    )
    [item] = open_source(shard, EditInputs())
    assert item.problem is not None and item.problem[0] == LINK_MEMBER
    assert "k1.source.png is a symbolic link" in item.problem[1]


@pytest.mark.parametrize("text, size", [("4096", 4096), ("512K", 512 << 10), ("20MB", 20 * MIB), ("20MiB", 20 * MIB),
                                        ("1g", 1 << 30), ("7B", 7)])
def test_sizes_read_with_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("item", ["jpg", "=20MB", "jpg=lots", "jpg=-1", "a/b=1K"])
def test_bad_caps_give_an_error_naming_the_item(item):
    with pytest.raises(InputError, match="EXT=SIZE|number of bytes"):
        parse_caps([item])


def test_star_sets_the_cap_of_every_other_extension():
    policy = MemberPolicy().with_caps(parse_caps(["*=1K", ".PNG=2K"]))
    assert (policy.cap("k.npy"), policy.cap("k.source.png"), policy.cap("k.json")) == (1024, 2048, 4 * MIB)
