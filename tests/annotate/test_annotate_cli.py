"""`got-data annotate t2i | edit | multiturn`: one shared option set, each command's own input options,
and input problems reported as one line with exit code 2 before any engine starts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from got_data.cli import app
from got_data.cli.root import main

SHARED = ("--out", "--config", "--vlm", "--llm", "--limit", "--samples-per-shard", "--ray-address", "--dataset",
          "--max-images-in-flight", "--max-input-pixels", "--force", "--retry-rejects",
          "--allow-paths-outside", "--strip-metadata", "--plan")
OWN = {
    "t2i": ("--image-column", "--caption-column"),
    "edit": ("--source-column", "--target-column", "--instruction-column", "--edit-type-column"),
    "multiturn": ("--source-column", "--turns-column", "--instruction-column", "--final-column", "--intermediates-column"),
}


@pytest.mark.parametrize("command", sorted(OWN))
def test_every_annotate_command_has_the_shared_options_and_its_own(command):
    result = CliRunner().invoke(app, ["annotate", command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in SHARED + OWN[command]:
        assert option in result.output, (command, option)
    others = {o for name, opts in OWN.items() if name != command for o in opts} - set(OWN[command])
    assert not [o for o in others if o in result.output]


def test_input_problems_exit_2_with_advice(tmp_path):
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(json.dumps({"src": "a.jpg", "target": "b.jpg", "instruction": "x"}) + "\n")

    def fails_with(args, message):
        result = CliRunner().invoke(app, ["annotate", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output

    fails_with(["edit", str(manifest)], "no source column 'source'")
    fails_with(["multiturn", str(tmp_path)], "multi-turn edits are read from a manifest")
    fails_with(["edit", str(manifest), "--config", "nope.yaml"], "nope.yaml not found")
    fails_with(["t2i", str(manifest), "--allow-paths-outside", str(tmp_path / "typo")],
               "--allow-paths-outside " + str(tmp_path / "typo") + ": not an existing folder")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def no_ray(monkeypatch):
    """Starting Ray fails the test: what it checks must come before Ray starts."""
    import got_data.annotate.launch as launch

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start before the command line and the spec are checked")

    monkeypatch.setattr(launch, "init_ray", refuse)


def test_a_spec_or_prompt_that_is_not_utf8_is_one_line(tmp_path, no_ray):
    """A pipeline spec or a prompt beside it saved in another encoding: one line naming the file, no traceback."""
    images = tmp_path / "images"
    images.mkdir()
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"# caf\xe9\nextends: t2i-tiny.yaml\n")
    beside = tmp_path / "prompts-beside"
    (beside / "prompts").mkdir(parents=True)
    (beside / "spec.yaml").write_text("extends: t2i-tiny.yaml\n")
    (beside / "prompts" / "recaption.txt").write_bytes("[user]\nD\xe9cris l'image.\n".encode("latin-1"))
    for config, file in [(spec, spec), (beside / "spec.yaml", beside / "prompts" / "recaption.txt")]:
        result = CliRunner().invoke(app, ["annotate", "t2i", str(images), "--out", str(tmp_path / "out"),
                                          "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert f"{file} is not UTF-8 text" in " ".join(result.output.split()), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


def test_every_command_line_check_comes_before_ray_and_the_run_marker(tmp_path, no_ray, capsys):
    """A wrong model or a number out of range is one line (exit 2) before Ray starts and before --out is
    claimed: a corrected rerun into the same --out is not refused as another job's."""
    images = tmp_path / "images"
    images.mkdir()
    text_model = tmp_path / "text-model"
    text_model.mkdir()
    (text_model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    out = tmp_path / "out"
    for args, message in [
        (["--vlm", str(tmp_path / "no-such-model")], "cannot read config.json of model"),
        (["--llm", str(images)], "config.json is missing"),
        (["--vlm", str(text_model)], "role 'vlm' needs a vision family"),
        (["--limit", "0"], "--limit"),
        (["--samples-per-shard", "0"], "--samples-per-shard"),
        (["--max-input-pixels", "-1"], "--max-input-pixels"),
        (["--annotators", "none"], "--annotators"),
    ]:
        assert main(["annotate", "t2i", str(images), "--out", str(out), *args]) == 2, args
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, (args, error)
        assert not out.exists(), args
