"""The readers of shards take a bucket like a folder, through the URI layer (no `pipe:`, no URL opener):
`got-data view`, `got-data report`, `iter_samples` and the trainer's data sources, against a real S3
server (SeaweedFS on loopback), each compared with the same shards read from the local disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from got_data import uri
from got_data.cli import app
from got_data.errors import ShardError
from got_data.report import write_report
from got_data.report.facts import gather
from got_data.shards.layout import resolve_shards
from got_data.shards.reader import iter_samples
from got_data.shards.writer import ShardWriter
from got_data.view import write_preview
from tests.test_view import Page

SHARDS_DIR = Path(__file__).resolve().parent / "data" / "shards"


def upload_tree(folder: Path, prefix: str) -> str:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            uri.upload(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return prefix


def page_of(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture
def two_shards(tmp_path) -> Path:
    """A folder of 2 shards (3 + 2 samples of the committed test shards, all three kinds)."""
    samples = list(iter_samples([SHARDS_DIR / kind for kind in ("t2i", "edit", "multiturn")]))[1:6]
    with ShardWriter(tmp_path / "two", samples_per_shard=3) as writer:
        for sample in samples:
            writer.write(sample.record, sample.images)
    return tmp_path / "two"


def test_samples_in_a_bucket_read_like_local_ones(s3_bucket, two_shards):
    prefix = upload_tree(two_shards, f"{s3_bucket}/got")
    local = [(s.key, s.record, s.images) for s in iter_samples(two_shards)]
    assert [(s.key, s.record, s.images) for s in iter_samples(prefix)] == local
    assert [s.key for s in iter_samples(f"{prefix}/got-00000[1].tar")] == [key for key, _, _ in local[3:]]
    mixed = resolve_shards([two_shards / "got-000000.tar", f"{prefix}/got-*.tar"])
    assert [str(s) for s in mixed] == [str(two_shards / "got-000000.tar"), f"{prefix}/got-000000.tar",
                                       f"{prefix}/got-000001.tar"]
    with pytest.raises(ShardError, match="no shard matches"):
        resolve_shards(f"{prefix}/other-*.tar")
    with pytest.raises(ShardError, match="holds no finished shard"):
        resolve_shards(f"{s3_bucket}/nothing-here")
    with pytest.raises(ShardError, match="only the last part may hold a glob"):
        resolve_shards(f"{s3_bucket}/g*/got-000000.tar")


def test_view_writes_the_page_of_a_bucket_into_it_or_where_told(s3_bucket, tmp_path):
    folder = tmp_path / "t2i"
    shutil.copytree(SHARDS_DIR / "t2i", folder)
    prefix = upload_tree(folder, f"{s3_bucket}/t2i")
    local = write_preview(folder)
    result = write_preview(prefix)
    assert str(result.path) == f"{prefix}/preview.html" and result.samples == local.samples == 3
    assert page_of(uri.read_text(result.path)).sections == page_of(local.path.read_text()).sections
    assert not [i.base_name for i in uri.list_dir(prefix) if i.base_name.startswith(".")]  # nothing staged left

    runner = CliRunner()
    out = tmp_path / "pages" / "bucket.html"
    cli = runner.invoke(app, ["view", f"{prefix}/got-*.tar", "--out", str(out), "--limit", "2"])
    assert cli.exit_code == 0, cli.output
    assert len(page_of(out.read_text()).sections) == 2
    cli = runner.invoke(app, ["view", f"{prefix}/missing"])
    assert cli.exit_code == 2 and "holds no finished shard" in cli.output


def test_report_reads_a_bucket_output_and_writes_its_pages_there(s3_bucket, tmp_path, two_shards):
    prefix = upload_tree(two_shards, f"{s3_bucket}/run")
    local, bucket = gather(two_shards, 4, seed=1), gather(prefix, 4, seed=1)
    assert bucket.records == local.records == 5 and bucket.dataset.to_dict() == local.dataset.to_dict()
    assert [e.key for e in bucket.sample] == [e.key for e in local.sample]  # the same seeded draw
    result = write_report(prefix, sample_size=4, seed=1)
    assert (str(result.path), str(result.samples_page)) == (f"{prefix}/report.html", f"{prefix}/report-samples.html")
    report_page = uri.read_text(result.path)
    assert "GoT run report" in report_page and prefix in report_page
    assert len(page_of(uri.read_text(result.samples_page)).sections) == 4

    cli = CliRunner().invoke(app, ["report", prefix, "--out", str(tmp_path / "report.html"), "--sample", "2"])
    assert cli.exit_code == 0, cli.output
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report-samples.html").is_file()
    cli = CliRunner().invoke(app, ["report", f"{s3_bucket}/no-run-here"])
    assert cli.exit_code == 2 and "is not a folder" in cli.output
