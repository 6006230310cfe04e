"""Edit inputs: manifests, folder layout and shards of pairs, manifests of sequences; every bad
input becomes an item with a problem (never lost), instructions kept verbatim."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from got_data.errors import InputError
from got_data.ingest import (
    EditInputs,
    FolderSource,
    ManifestSource,
    MultiTurnInputs,
    WebDatasetSource,
    normalize_edit_type,
    open_source,
)
from got_data.ingest.edit_inputs import AMBIGUOUS_IMAGE
from got_data.ingest.edit_items import EMPTY_INSTRUCTION, NO_TURNS, EditItem
from got_data.ingest.images import prepare_image
from got_data.ingest.items import INVALID_ROW, MISSING_FILE, MISSING_IMAGE_PATH, URL_NOT_SUPPORTED
from got_data.sample_data import sample_edit_pairs, sample_edit_sequences
from tests.ingest.bad_images import encode, gradient

JPG = encode(gradient(), "JPEG")
PNG = encode(gradient().rotate(180), "PNG")


@pytest.fixture
def images(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(JPG)
    (tmp_path / "imgs" / "b.png").write_bytes(PNG)
    return tmp_path


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pair_manifest_rows_and_their_problems(images):
    manifest = write_jsonl(images / "pairs.jsonl", [
        {"source": "imgs/a.jpg", "target": "imgs/b.png", "instruction": "turn it <|im_end|> upside down"},
        {"source": "imgs/a.jpg", "target": "imgs/missing.png", "instruction": "x"},
        {"source": "imgs/a.jpg", "target": "", "instruction": "x"},
        {"source": "imgs/a.jpg", "target": "imgs/b.png", "instruction": "   "},
        {"source": "imgs/a.jpg", "target": "imgs/b.png", "instruction": "<|im_end|><|box_start|>"},
        {"source": "https://example.com/a.jpg", "target": "imgs/b.png", "instruction": "x"},
        "{not json",
        {"source": "imgs/a.jpg", "target": "imgs/b.png"},
        {"source": "imgs/a.jpg", "target": "imgs/b.png", "instruction": "x", "edit_type": "object_swap"},
    ])
    source = ManifestSource(manifest, EditInputs())
    items = list(source)
    assert source.count() == len(items) == 9
    assert all(isinstance(i, EditItem) for i in items)
    ok, missing, empty_target, blank, tokens_only, url, bad_json, no_instruction, typed = items
    assert ok.problem is None and ok.roles() == ["source", "target"]
    assert ok.turns[0].instruction == "turn it <|im_end|> upside down"  # verbatim
    assert ok.source_info().original_caption == "turn it <|im_end|> upside down"
    assert ok.turns[0].edit_type is None
    assert typed.turns[0].edit_type == "replace"  # the optional column, present in a later row only
    assert {r: s.read() for r, s in ok.image_sources().items()} == {"source": JPG, "target": PNG}
    assert missing.problem[0] == MISSING_FILE and missing.problem[1].startswith("target image:")
    assert empty_target.problem[0] == MISSING_IMAGE_PATH
    assert blank.problem[0] == EMPTY_INSTRUCTION
    assert tokens_only.problem == (EMPTY_INSTRUCTION, "the target instruction is empty (only control tokens)")
    assert tokens_only.source_info().original_caption == "<|im_end|><|box_start|>"  # shown in the rejects
    assert url.problem[0] == URL_NOT_SUPPORTED and url.problem[1].startswith("source image:")
    assert bad_json.problem[0] == INVALID_ROW
    assert no_instruction.problem[0] == EMPTY_INSTRUCTION
    assert all(i.image_sources() == {} for i in items[1:-1])


def test_pair_manifest_columns_are_checked_up_front(images):
    manifest = write_jsonl(images / "p.jsonl", [{"src": "imgs/a.jpg", "dst": "imgs/b.png", "text": "x", "kind": "add"}])
    with pytest.raises(InputError, match="no source column 'source'"):
        ManifestSource(manifest, EditInputs())
    with pytest.raises(InputError, match="no edit type column 'type'"):
        ManifestSource(manifest, EditInputs(source_column="src", target_column="dst", instruction_column="text",
                                            edit_type_column="type"))
    (item,) = ManifestSource(manifest, EditInputs(source_column="src", target_column="dst", instruction_column="text",
                                                  edit_type_column="kind"))
    assert item.problem is None and item.turns[0].edit_type == "add"


def test_parquet_pairs_with_embedded_images(tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"source": [JPG, JPG], "target": [PNG, None], "instruction": ["flip it", "x"]}), path)
    ok, missing = ManifestSource(path, EditInputs())
    assert ok.problem is None and load_input_image_bytes(ok) == {"source": JPG, "target": PNG}
    assert missing.problem[0] == MISSING_IMAGE_PATH


def load_input_image_bytes(item):
    return {role: prepare_image(src.read()).data for role, src in item.image_sources().items()}


def test_sequence_manifest(images):
    manifest = write_jsonl(images / "seq.jsonl", [
        {"source": "imgs/a.jpg", "turns": [{"instruction": "one", "image": "imgs/b.png", "edit_type": "colour change"},
                                           {"instruction": "two", "image": "imgs/a.jpg"}]},
        {"source": "imgs/a.jpg", "turns": []},
        {"source": "imgs/a.jpg", "turns": [{"instruction": "one", "image": "imgs/b.png"},
                                           {"instruction": "two", "image": "imgs/gone.png"}]},
        {"source": "imgs/a.jpg", "turns": "not a list"},
        {"source": "imgs/a.jpg", "turns": json.dumps([{"instruction": "one", "image": "imgs/b.png"}])},
        {"source": "imgs/a.jpg", "turns": [{"instruction": "", "image": "imgs/b.png"}]},
    ])
    ok, zero, missing_turn, not_list, as_string, empty = ManifestSource(manifest, MultiTurnInputs())
    assert ok.problem is None and ok.roles() == ["source", "turn1", "turn2"]
    assert [t.edit_type for t in ok.turns] == ["color", None]
    assert json.loads(ok.source_info().original_caption) == ["one", "two"]
    assert zero.problem[0] == NO_TURNS
    assert missing_turn.problem[0] == MISSING_FILE and missing_turn.problem[1].startswith("turn 2 image:")
    assert not_list.problem[0] == INVALID_ROW
    assert as_string.problem is None and as_string.roles() == ["source", "turn1"]
    assert empty.problem == (EMPTY_INSTRUCTION, "the turn 1 instruction is empty")


def test_sequence_manifest_with_one_combined_instruction(images):
    manifest = write_jsonl(images / "combined.jsonl", [
        {"source": "imgs/a.jpg", "instruction": "make it red, then add a cat", "final": "imgs/b.png",
         "intermediates": {"2": "imgs/a.jpg", "1": "imgs/b.png"}},
        {"source": "imgs/a.jpg", "instruction": "one then two", "final": "imgs/b.png"},
        {"source": "imgs/a.jpg", "instruction": "<|im_end|>", "final": "imgs/b.png"},
        {"source": "imgs/a.jpg", "instruction": "one then two"},
        {"source": "imgs/a.jpg", "instruction": "one then two", "final": "imgs/b.png", "intermediates": {"0": "imgs/a.jpg"}},
        {"source": "imgs/a.jpg", "instruction": "one then two", "final": "imgs/b.png", "intermediates": ["imgs/a.jpg"]},
        {"source": "imgs/a.jpg", "instruction": "one then two", "final": "imgs/b.png", "intermediates": {"1": "imgs/gone.png"}},
        {"source": "imgs/a.jpg", "instruction": "one", "final": "imgs/b.png",
         "turns": [{"instruction": "one", "image": "imgs/b.png"}]},
        {"source": "imgs/a.jpg", "turns": [{"instruction": "one", "image": "imgs/b.png"}]},
    ])
    ok, bare, tokens_only, no_final, step_zero, not_object, gone, both, per_turn = ManifestSource(manifest, MultiTurnInputs())
    assert ok.problem is None and ok.roles() == ["source", "turn1", "turn2", "final"] and ok.turns == ()
    assert load_input_image_bytes(ok) == {"source": JPG, "turn1": PNG, "turn2": JPG, "final": PNG}
    assert json.loads(ok.source_info().original_caption) == ["make it red, then add a cat"]
    assert bare.problem is None and bare.roles() == ["source", "final"]
    assert tokens_only.problem == (EMPTY_INSTRUCTION, "the combined instruction is empty (only control tokens)")
    assert no_final.problem[0] == MISSING_IMAGE_PATH and no_final.problem[1].startswith("final image:")
    assert step_zero.problem[0] == INVALID_ROW and "'0' is not a step number" in step_zero.problem[1]
    assert not_object.problem[0] == INVALID_ROW and "a list, not an object" in not_object.problem[1]
    assert gone.problem[0] == MISSING_FILE and gone.problem[1].startswith("image after step 1:")
    assert both.problem[0] == INVALID_ROW and "give one" in both.problem[1]
    assert per_turn.problem is None and per_turn.roles() == ["source", "turn1"] and per_turn.combined is None


def test_a_sequence_manifest_needs_turns_or_a_combined_instruction_and_its_final_image(images):
    neither = write_jsonl(images / "neither.jsonl", [{"source": "imgs/a.jpg", "steps": "one then two"}])
    with pytest.raises(InputError, match="neither a turns column 'turns' nor a combined instruction column"):
        list(ManifestSource(neither, MultiTurnInputs()))
    no_final = write_jsonl(images / "no_final.jsonl", [{"source": "imgs/a.jpg", "instruction": "one then two"}])
    with pytest.raises(InputError, match="no final image column 'final'"):
        list(ManifestSource(no_final, MultiTurnInputs()))


def test_a_parquet_sequence_manifest_with_combined_instructions(images):
    table = pa.table({"source": ["imgs/a.jpg"], "instruction": ["one, then two"], "final": ["imgs/b.png"],
                      "intermediates": [json.dumps({"1": "imgs/a.jpg"})]})
    pq.write_table(table, images / "combined.parquet")
    (item,) = ManifestSource(images / "combined.parquet", MultiTurnInputs())
    assert item.problem is None and item.roles() == ["source", "turn1", "final"]


def write_pair(folder, source=JPG, target=PNG, instruction="flip the gradient", edit_type=None, target_name="target.png"):
    folder.mkdir(parents=True)
    if source is not None:
        (folder / "source.jpg").write_bytes(source)
    if target is not None:
        (folder / target_name).write_bytes(target)
    if instruction is not None:
        (folder / "instruction.txt").write_text(instruction, encoding="utf-8")
    if edit_type is not None:
        (folder / "edit_type.txt").write_text(edit_type, encoding="utf-8")


def test_folder_layout(tmp_path):
    root = tmp_path / "pairs"
    write_pair(root / "a", edit_type="Background Change")
    write_pair(root / "b", target=None)
    write_pair(root / "c", instruction=None)
    write_pair(root / "group" / "d", instruction="caf\xe9".encode("latin-1").decode("latin-1"))
    write_pair(root / "e")
    (root / "e" / "target.jpg").write_bytes(JPG)
    (root / "f").mkdir()
    (root / "f" / "notes.md").write_text("not a pair")
    write_pair(root / "g", instruction=None)
    (root / "g" / "instruction.txt").write_bytes(b"caf\xe9")
    source = FolderSource(root, EditInputs())
    items = {i.input_ref: i for i in source}
    assert source.count() == len(items) == 6
    assert sorted(items) == ["a", "b", "c", "e", "g", "group/d"]
    assert items["a"].problem is None and items["a"].turns[0].edit_type == "background"
    assert items["a"].turns[0].instruction == "flip the gradient"
    assert items["b"].problem[0] == MISSING_FILE and "target" in items["b"].problem[1]
    assert items["c"].problem == (EMPTY_INSTRUCTION, "the target instruction is empty (no instruction.txt in the folder)")
    assert items["group/d"].problem is None
    assert items["e"].problem[0] == AMBIGUOUS_IMAGE
    assert items["g"].problem[0] == EMPTY_INSTRUCTION and "invalid_utf8" in items["g"].problem[1]


def test_webdataset_pairs(tmp_path, shard_writer):
    shard = shard_writer(tmp_path / "pairs-000.tar", [
        ("k1", {"source.jpg": JPG, "target.png": PNG, "instruction.txt": b"flip it"}),
        ("k2", {"source.jpg": JPG, "target.jpg": JPG, "json": json.dumps({"instruction": "same", "edit_type": "removal"}).encode()}),
        ("k3", {"source.jpg": JPG, "txt": b"no target"}),
        ("k4", {"source.jpg": JPG, "target.png": PNG}),
    ])
    k1, k2, k3, k4 = WebDatasetSource([shard], EditInputs())
    assert k1.input_ref == "pairs-000.tar#k1" and k1.problem is None
    assert {r: s.read() for r, s in k1.image_sources().items()} == {"source": JPG, "target": PNG}
    assert k2.problem is None and k2.turns[0].instruction == "same" and k2.turns[0].edit_type == "remove"
    assert k3.problem[0] == MISSING_FILE and k3.problem[1].startswith("target image:")
    assert k4.problem[0] == EMPTY_INSTRUCTION


def test_open_source_dispatches_edit_inputs(tmp_path, images, shard_writer):
    pairs = write_jsonl(images / "pairs.jsonl", [{"source": "imgs/a.jpg", "target": "imgs/b.png", "instruction": "x"}])
    assert isinstance(open_source(pairs, EditInputs()), ManifestSource)
    write_pair(tmp_path / "folder" / "k")
    assert isinstance(open_source(tmp_path / "folder", EditInputs()), FolderSource)
    shard_writer(tmp_path / "shards" / "a-000.tar", [("k", {"source.jpg": JPG, "target.png": PNG, "txt": b"x"})])
    assert isinstance(open_source(tmp_path / "shards", EditInputs()), WebDatasetSource)
    assert isinstance(open_source(str(tmp_path / "shards" / "*.tar"), EditInputs()), WebDatasetSource)
    seq = write_jsonl(images / "seq.jsonl", [{"source": "imgs/a.jpg", "turns": []}])
    assert isinstance(open_source(seq, MultiTurnInputs()), ManifestSource)
    with pytest.raises(InputError, match="multi-turn edits are read from a manifest"):
        open_source(tmp_path / "folder", MultiTurnInputs())
    with pytest.raises(InputError, match="URL"):
        open_source("https://example.com/pairs.jsonl", EditInputs())
    with pytest.raises(InputError, match="does not exist"):
        open_source(tmp_path / "nothing.jsonl", EditInputs())


@pytest.mark.parametrize("label,expected", [
    ("add", "add"), ("object_addition", "add"), ("Object Removal", "remove"), ("swap", "replace"),
    ("object_replacement", "replace"), ("background_swap", "background"), ("color_alteration", "color"),
    ("Colour change", "color"), ("attribute_modification", "attribute"), ("expression", "expression"),
    ("weather", "weather"), ("relighting", "lighting"), ("style_transfer", "style"), ("whatever", "other"),
    ("", None), (None, None), (3, None),
])
def test_edit_type_labels_normalize(label, expected):
    assert normalize_edit_type(label) == expected


def test_bundled_edit_examples_are_plain_and_changed():
    pairs = list(open_source(sample_edit_pairs(), EditInputs()))
    assert len(pairs) == 5 and all(p.problem is None for p in pairs)
    assert {p.turns[0].edit_type for p in pairs} == {"color", "attribute", "add", "style", "lighting"}
    for pair in pairs:
        images = {role: prepare_image(src.read()) for role, src in pair.image_sources().items()}
        assert all(im.format == "JPEG" and im.normalization == [] for im in images.values())
        assert images["source"].sha256 != images["target"].sha256
    (sequence,) = open_source(sample_edit_sequences(), MultiTurnInputs())
    assert sequence.problem is None and sequence.roles() == ["source", "turn1", "turn2"]
