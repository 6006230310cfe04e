"""validate_paths and `got-data validate` on good, broken and hostile inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tarfile

import pytest
import typer
from typer.testing import CliRunner

from got_data.cli.validate import validate
from got_data.shards import ERROR_KINDS, ShardWriter, validate_paths, write_manifest
from got_data.shards.index import read_index
from got_data.shards.layout import index_filename


@pytest.mark.parametrize("kind, samples", [("t2i", 3), ("edit", 3), ("multiturn", 3)])
def test_committed_valid_shards_pass(shards_dir, kind, samples):
    report = validate_paths(shards_dir / kind)
    assert report.ok, report.issues
    assert (report.shards, report.samples, report.valid) == (1, samples, samples)


def test_schema_1_0_shards_still_read_and_validate(shards_dir):
    """tests/data/schema-1.0/ holds shards as got-data wrote them before schema 1.1 (verification scores)."""
    from got_data.shards import iter_samples

    old = shards_dir.parent / "schema-1.0" / "t2i"
    report = validate_paths(old)
    assert report.ok and report.valid == 3, report.issues
    assert {sample.record.schema_version for sample in iter_samples(old)} == {"1.0"}


@pytest.mark.parametrize("case, kind, reason", [
    ("box_out_of_range", "schema", "outside [0, 1000)"),
    ("span_misses_phrase", "schema", "does not point at it"),
    ("missing_image", "missing_member", "target image"),
    ("orphan_image", "orphan_member", "have no record"),
    ("image_mismatch", "image_mismatch", "sha256"),
    ("bad_json", "bad_json", "does not parse"),
    ("truncated_tar", "tar_truncated", "ends inside a member"),
    ("instruction_control_token", "schema", "instruction contains special token <|im_end|>"),
    ("edit_op_bidi_control", "schema", "change contains the control character U+202E"),
    ("object_on_missing_image", "schema", "placed on image 'turn1', not one of"),
])
def test_each_broken_shard_fails_with_its_kind(shards_dir, case, kind, reason):
    report = validate_paths(shards_dir / "broken" / case)
    assert not report.ok
    assert report.kinds() == {kind}
    issue = next(i for i in report.issues if i.kind == kind)
    assert reason in issue.reason
    if kind != "tar_truncated":
        assert (report.samples, report.valid) == (2, 1)
        assert issue.key is not None


def shard_copy(shards_dir, tmp_path, kind="t2i"):
    target = tmp_path / kind
    shutil.copytree(shards_dir / kind, target)
    return target


@pytest.mark.parametrize("content, kind", [
    (b"", "tar_unreadable"),
    (b"%PDF-1.4 this is not a tar archive\n" * 40, "tar_unreadable"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 600, "tar_unreadable"),
])
def test_hostile_files_are_reported_not_raised(tmp_path, content, kind):
    path = tmp_path / "got-000000.tar"
    path.write_bytes(content)
    report = validate_paths(path)
    assert kind in report.kinds()
    assert report.samples == 0


def members_end(tar_path) -> int:
    """Byte offset just past the last member's data: where the end-of-archive blocks start."""
    with tarfile.open(tar_path) as archive:
        last = archive.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


@pytest.mark.parametrize("where, kind", [
    ("inside first header", "tar_unreadable"),  # under one header block: nothing shows it was ever a tar
    ("after first header", "tar_truncated"),
    ("inside data", "tar_truncated"),
    ("before end marker", "tar_truncated"),
    ("after one zero block", "tar_truncated"),
])
def test_truncation_anywhere_is_caught(shards_dir, tmp_path, where, kind):
    tar = shard_copy(shards_dir, tmp_path) / "got-000000.tar"
    end = members_end(tar)
    cut = {"inside first header": 300, "after first header": 512, "inside data": 3000,
           "before end marker": end, "after one zero block": end + 512}[where]
    tar.write_bytes(tar.read_bytes()[:cut])
    assert kind in validate_paths(tar).kinds()


def test_garbled_header_mid_archive(shards_dir, tmp_path):
    folder = shard_copy(shards_dir, tmp_path)
    tar = folder / "got-000000.tar"
    data = bytearray(tar.read_bytes())
    with tarfile.open(tar) as archive:
        second = archive.getmembers()[1]
    data[second.offset : second.offset + 100] = b"X" * 100
    tar.write_bytes(bytes(data))
    assert "tar_unreadable" in validate_paths(tar).kinds()


def test_thousand_sample_shard(tmp_path, make_variant):
    with ShardWriter(tmp_path, samples_per_shard=1000) as writer:
        for i in range(1000):
            writer.write(*make_variant(i))
    write_manifest(tmp_path)
    report = validate_paths(tmp_path)
    assert report.ok, report.issues[:3]
    assert (report.shards, report.samples, report.valid) == (1, 1000, 1000)


def test_index_and_manifest_must_agree_with_the_tar(shards_dir, tmp_path, shard_generator):
    folder = shard_copy(shards_dir, tmp_path)
    rows = read_index(folder / index_filename("got", 0))
    shard_generator.write_v1_index(folder / index_filename("got", 0), [dataclasses.replace(rows[0], size=1)] + rows[1:])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["shards"][0]["samples"] = 4
    manifest["counts_by_kind"] = {"t2i": 4}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = validate_paths(folder)
    assert report.kinds() == {"index_mismatch", "manifest_mismatch"}
    assert report.issue_counts["manifest_mismatch"] == 2


def test_missing_index_and_shard_missing_from_disk(shards_dir, tmp_path):
    folder = shard_copy(shards_dir, tmp_path)
    (folder / index_filename("got", 0)).unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["shards"].append({**manifest["shards"][0], "file": "got-000001.tar"})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = validate_paths(folder)
    assert report.kinds() == {"index_mismatch", "manifest_mismatch"}
    assert any("not on disk" in i.reason for i in report.issues)


def test_error_kinds_are_the_documented_ones(shards_dir):
    report = validate_paths(sorted((shards_dir / "broken").iterdir()))
    assert report.kinds() <= set(ERROR_KINDS)
    assert report.kinds() == {"schema", "missing_member", "orphan_member", "image_mismatch", "bad_json", "tar_truncated"}


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(validate)
    app.command("noop")(lambda: None)  # two commands, so `validate` is addressed by name as on the main app
    return app


def test_cli_exit_codes_and_summary(shards_dir, tmp_path):
    runner = CliRunner(env={"COLUMNS": "200"})
    ok = runner.invoke(cli(), ["validate", str(shards_dir / "t2i"), str(shards_dir / "edit")])
    assert ok.exit_code == 0, ok.output
    assert "all shards valid" in ok.output
    report_path = tmp_path / "report.json"
    bad = runner.invoke(cli(), ["validate", str(shards_dir / "broken" / "missing_image"), "--json", str(report_path)])
    assert bad.exit_code == 1
    assert "missing_member" in bad.output and "target image" in bad.output
    assert json.loads(report_path.read_text())["issue_counts"] == {"missing_member": 1}
    missing = runner.invoke(cli(), ["validate", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
