"""`got-data report` on real annotate outputs (the real runner, decode tasks, stages and shard writer,
answered by the world oracle), opened in a real headless chromium: no console error, every plot and
thumbnail rendered, a hostile caption shown as text, never as markup. Also: `got-data view` on a folder
with an invalid sample, in the same browser."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from rich.console import Console

from got_data.annotate.launch import ModelChoice, annotate
from got_data.annotate.runner import RunOptions
from got_data.errors import RecordError
from got_data.records import parse_record
from got_data.report import write_report
from got_data.report.facts import sample_keys, shard_keys
from got_data.shards.layout import list_shards
from got_data.shards.reader import iter_samples
from got_data.shards.writer import ShardWriter
from got_data.spec import load_spec
from got_data.view import write_preview
from got_data.world.oracle import OraclePool, WorldOracle, open_world_input
from got_data.world.sets import read_truth, write_world_set
from tests.browser import Browser

ROOT = Path(__file__).resolve().parents[1]
SCENES = 8
SAMPLE = 5
# Markup that would show up in the DOM (or run, or fetch) if any text reached the page unescaped.
HOSTILE = ('<b data-injected="1">bold</b><img data-injected="2" src="https://example.invalid/x.png" '
           "onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>&amp; \"quoted\" caption")
INJECTED = "return document.querySelectorAll('[data-injected], script').length"


def _annotate_world(kind: str, work: Path, count: int) -> Path:
    """An annotate run (launch.annotate, as the CLI runs it) on a world set, answered by the oracle."""
    path = write_world_set(work / "set", kind, count, seed=9)
    if kind == "t2i":
        for image in sorted(path.iterdir()):
            image.with_suffix(".txt").write_text(HOSTILE, encoding="utf-8")
        (path / "zz-empty.png").write_bytes(b"")
    spec = load_spec(f"{kind}-world.yaml")
    vlm = spec.models["vlm"]
    oracle = WorldOracle(read_truth(work / "set"), pixel_bounds=(vlm.min_pixels, vlm.max_pixels))
    options = RunOptions(out_dir=work / "out", samples_per_shard=3, show_progress=False,
                         console=Console(file=open(os.devnull, "w")))
    annotate(spec, open_world_input(kind, path), options, ModelChoice(),
             pools={role: OraclePool(role, oracle) for role in spec.roles()})
    return work / "out"


@pytest.fixture(scope="module")
def t2i_out(ray_session, tmp_path_factory) -> Path:
    return _annotate_world("t2i", tmp_path_factory.mktemp("report-t2i"), SCENES)


@pytest.fixture(scope="module")
def multiturn_out(ray_session, tmp_path_factory) -> Path:
    return _annotate_world("multiturn", tmp_path_factory.mktemp("report-multiturn"), 4)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.stop()


def test_every_annotate_run_ends_with_a_report(t2i_out):
    assert (t2i_out / "report.html").is_file() and (t2i_out / "report-samples.html").is_file()
    assert not list(t2i_out.glob(".*.partial"))


def test_report_renders_in_a_real_browser(t2i_out, browser, tmp_path):
    result = write_report(t2i_out, tmp_path / "r.html", sample_size=SAMPLE, seed=1)
    page = browser.load(result.path)
    assert page.errors() == []
    assert page.broken_images() == []
    alts = [alt for alt, _, _ in page.images]
    for plot in ("boxes per record", "box area", "box aspect", "prompt length", "GoT length", "image sizes",
                 "rejects by stage and reason", "latency per stage", "boxes per phrase"):
        assert plot in alts, plot
    assert alts.count("image") == SAMPLE  # one thumbnail per sampled record
    assert browser.run(INJECTED) == 0 and page.title.startswith("GoT run report")
    shown = browser.run("return document.getElementById('sample').innerText")
    assert shown.count('<b data-injected="1">bold</b>') == SAMPLE  # the caption, as text
    headline = browser.run("return document.getElementById('headline').innerText")
    assert f"{SCENES + 1}\ninputs" in headline and f"{SCENES}\nrecords" in headline and "1\nrejects" in headline
    rejects = browser.run("return document.getElementById('rejects').innerText")
    assert "decode\tempty_file\t1" in rejects


def test_the_report_gives_models_prompts_spec_tokens_and_rate(t2i_out, browser, tmp_path):
    """The headline facts the issue lists, read from the rendered page against stats.json and the records."""
    stats = json.loads((t2i_out / "stats.json").read_text())
    provenance = next(iter(iter_samples(t2i_out))).record.provenance
    page = browser.load(write_report(t2i_out, tmp_path / "r.html", sample_size=1).path)
    assert page.errors() == []
    models = browser.run("return document.getElementById('models').innerText")
    for model in provenance.models:
        assert f"{model.role}\t{model.name}\t{model.revision or '-'}" in models
    for stage, digest in provenance.prompt_hashes.items():
        assert f"{stage}\t{digest}" in models
    assert f"spec sha256\t{stats['attempts'][-1]['spec_sha256']}" in models
    assert f"{provenance.pipeline} {provenance.pipeline_version}" in models
    spec = stats["attempts"][-1]["spec"]
    assert spec["name"] == "t2i" and sorted(stage["name"] for stage in spec["stages"]) == sorted(stats["run"]["stages"])
    assert json.loads(browser.run("return document.querySelector('#spec pre').textContent")) == spec
    stages = browser.run("return document.getElementById('stages').innerText")
    tokens = stats["run"]["tokens_per_stage"]
    assert tokens and all(usage["requests"] > 0 for usage in tokens.values())
    for stage, usage in tokens.items():
        assert f"{stage}\t{usage['requests']}\t{usage['prompt_tokens']}\t{usage['output_tokens']}" in stages
    headline = browser.run("return document.getElementById('headline').innerText")
    assert f"{stats['run']['records_per_s']}\nrecords/s (latest)" in headline


def test_no_browser_is_a_failure_not_a_skip(monkeypatch, tmp_path):
    """CI starts from a fresh machine: without chromium the page tests must fail, never skip."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="no headless browser"):
        Browser(tmp_path)


def test_the_sample_links_to_its_preview_page(t2i_out, browser, tmp_path):
    result = write_report(t2i_out, tmp_path / "r.html", sample_size=SAMPLE, seed=1)
    page = browser.load(result.samples_page)
    assert page.errors() == [] and page.broken_images() == []
    assert browser.run(INJECTED) == 0
    sections = browser.run("return Array.from(document.querySelectorAll('section.sample')).map(s => s.id)")
    browser.load(result.path)
    links = browser.run("return Array.from(document.querySelectorAll('#sample a')).map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(f"r-samples.html#{key}" for key in sections) and len(sections) == SAMPLE


def test_the_sample_is_seeded_and_random_not_the_first_records(t2i_out):
    keys = {tar: shard_keys(tar) for tar in list_shards(t2i_out)}
    in_order = [key for tar in sorted(keys) for key in keys[tar]]
    assert len(in_order) == SCENES
    draws = [set().union(*sample_keys(keys, SAMPLE, seed).values()) for seed in (1, 1, 2)]
    assert draws[0] == draws[1] and draws[0] != draws[2]
    assert len(draws[0]) == SAMPLE and draws[0] != set(in_order[:SAMPLE])


def test_a_large_run_is_sampled_from_a_few_random_shards():
    keys = {Path(f"got-{i:06d}.tar"): [f"{i}-{j}" for j in range(100)] for i in range(50)}
    drawn = sample_keys(keys, 24, seed=0)
    assert sum(len(k) for k in drawn.values()) == 24 and len(drawn) <= 4
    assert set(drawn) != {Path(f"got-{i:06d}.tar") for i in range(len(drawn))}  # not the first shards
    assert sample_keys(keys, 24, seed=0) == drawn and sample_keys(keys, 24, seed=1) != drawn


def test_edit_types_are_plotted_for_edit_runs(multiturn_out, browser):
    page = browser.load(multiturn_out / "report.html")
    assert page.errors() == [] and page.broken_images() == []
    assert "edit types" in [alt for alt, _, _ in page.images]


def test_report_command(t2i_out, tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "got_data", "report", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})

    done = cli(str(t2i_out), "--out", str(tmp_path / "page.html"), "--sample", "2", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "2 sampled records" in done.stdout and (tmp_path / "page-samples.html").is_file()
    empty = cli(str(tmp_path / "nothing-here"))
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "is not a folder" in empty.stderr


def test_view_shows_an_invalid_sample_with_its_error(t2i_out, browser, tmp_path):
    folder = tmp_path / "shards"
    samples = list(iter_samples(t2i_out))
    with ShardWriter(folder, samples_per_shard=10) as writer:
        for sample in samples[:3]:
            writer.write(sample.record, sample.images)
    broken = samples[0].record.model_dump(mode="json")
    broken["objects"][0]["boxes"][0] = [5, 5, 2000, 9]
    tar = list_shards(folder)[0]
    _append_member(tar, f"{'f' * 24}.json", json.dumps({**broken, "key": "f" * 24}).encode())
    with pytest.raises(RecordError):
        parse_record(json.dumps(broken))
    result = write_preview(folder)
    assert (result.samples, result.invalid) == (4, 1)
    page = browser.load(result.path)
    assert page.errors() == [] and page.broken_images() == []
    invalid = browser.run("return document.querySelector('section.invalid').innerText")
    assert "f" * 24 in invalid and "boxes" in invalid
    assert browser.run("return document.querySelectorAll('section.sample:not(.invalid)').length") == 3
    assert browser.run(INJECTED) == 0


def _append_member(tar: Path, name: str, data: bytes) -> None:
    """Add one member at the end of a finished tar (a sample the writer would never have accepted)."""
    with tarfile.open(tar, "a") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
