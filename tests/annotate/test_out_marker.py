"""`--out` belongs to one job: a foreign or mismatched folder is refused (one line, before Ray starts),
a rerun of the same job resumes, `--force` takes a folder over."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from got_data.annotate.out_marker import MARKER, RunIdentity, claim_output_dir
from got_data.cli import app
from got_data.errors import ShardError
from got_data.ingest import open_source
from got_data.spec import load_spec

MODELS = {"vlm": "/models/Qwen2-VL-7B-Instruct", "llm": "/models/Qwen2.5-7B-Instruct"}


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (64, 48), (10, 120, 200)).save(folder / name)
    return folder


def identity(images, spec="t2i.yaml", models=MODELS):
    return RunIdentity.of(load_spec(spec), open_source(str(images)), models)


def test_a_new_folder_is_claimed_and_a_rerun_resumes(tmp_path, images):
    out = tmp_path / "out"
    assert claim_output_dir(out, identity(images)) is False
    assert (out / MARKER).is_file()
    (images / "c.jpg").write_bytes((images / "a.jpg").read_bytes())  # more inputs appended: same input
    assert claim_output_dir(out, identity(images)) is True


def test_a_folder_holding_only_a_plan_is_claimed(tmp_path, images):
    out = tmp_path / "planned"
    out.mkdir()
    (out / "plan.json").write_text("{}")  # `got-data plan --out` writes it before the run
    assert claim_output_dir(out, identity(images)) is False
    other = tmp_path / "planned-too"
    other.mkdir()
    (other / "plan.json").write_text("{}")
    (other / "notes.txt").write_text("x")
    with pytest.raises(ShardError, match="not empty"):
        claim_output_dir(other, identity(images))


def test_the_marker_publishes_no_host_path(tmp_path, images):
    out = tmp_path / "out"
    claim_output_dir(out, identity(images))
    text = (out / MARKER).read_text()
    assert str(tmp_path) not in text and "models" in json.loads(text) and "/models/" not in text


def test_a_foreign_non_empty_folder_is_refused_untouched(tmp_path, images):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "manifest.json").write_text('{"theirs": true}')
    (out / "got-000000.tar").write_bytes(b"not ours")
    with pytest.raises(ShardError, match="not empty and was not written by got-data annotate"):
        claim_output_dir(out, identity(images))
    assert (out / "manifest.json").read_text() == '{"theirs": true}' and not (out / MARKER).exists()
    assert claim_output_dir(out, identity(images), force=True) is False
    assert (out / MARKER).is_file()


@pytest.mark.parametrize("change,what", [
    ({"spec": "t2i-tiny.yaml"}, "the stages or their options, the sampling, the models, the image options .* differ"),
    ({"models": {**MODELS, "vlm": "/models/Qwen2-VL-2B-Instruct"}}, "the models"),
])
def test_a_resume_with_other_output_settings_names_what_differs(tmp_path, images, change, what):
    out = tmp_path / "out"
    claim_output_dir(out, identity(images))
    with pytest.raises(ShardError, match=what):
        claim_output_dir(out, identity(images, **change))
    assert claim_output_dir(out, identity(images, **change), force=True) is False
    assert claim_output_dir(out, identity(images, **change)) is True


def test_another_input_is_another_job(tmp_path, images):
    out = tmp_path / "out"
    claim_output_dir(out, identity(images))
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.jpg").write_bytes((images / "a.jpg").read_bytes())
    with pytest.raises(ShardError, match="the input differ"):
        claim_output_dir(out, identity(other))


def test_pool_sizes_do_not_change_the_identity(images):
    spec = load_spec("t2i.yaml")
    bigger = spec.model_copy(update={"models": {role: m.model_copy(update={"num_actors": 8, "max_in_flight_per_actor": 512})
                                                for role, m in spec.models.items()}})
    source = open_source(str(images))
    assert RunIdentity.of(spec, source, MODELS) == RunIdentity.of(bigger, source, MODELS)


def test_cli_refuses_before_ray_starts(tmp_path, images, monkeypatch):
    import got_data.annotate.launch as launch

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start before --out is checked")

    monkeypatch.setattr(launch, "init_ray", no_ray)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out, message in [(foreign, "is not empty"), (a_file, "is a file")]:
        result = CliRunner().invoke(app, ["annotate", "t2i", str(images), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
