"""What CI relies on, through the real `got-data` entry point in a subprocess: exit codes, one error line
on stderr, `--version`, `validate --json FILE|-`, and errors checked before any work starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import got_data
from got_data.records import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
SHARDS = ROOT / "tests" / "data" / "shards"


def got_data_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "60", "PYTHONPATH": str(ROOT)}  # narrow: one line must not wrap
    return subprocess.run([sys.executable, "-m", "got_data", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def assert_one_error_line(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_version():
    result = got_data_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"got-data {got_data.__version__}"


@pytest.mark.parametrize("command", [(), ("validate",)])
def test_help_documents_the_exit_codes(command):
    result = got_data_cli(*command, "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    assert "Exit codes: 0 ok; 1 invalid data" in text and "2 usage or input error" in text


def test_the_readme_documents_the_exit_codes():
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "**Exit codes** (every command, also in `got-data --help`): `0` ok; `1` invalid data" in text
    assert "`2` usage or input error" in text


def test_usage_errors_are_one_line_with_exit_2():
    assert_one_error_line(got_data_cli("validate", "--no-such-option"), "--no-such-option", "got-data validate --help")
    assert_one_error_line(got_data_cli("no-such-command"), "no-such-command")


def test_a_bug_keeps_its_own_traceback(monkeypatch, capsys):
    """An error that is not got-data's own is a bug: main() must let it through unchanged (exit 1 with its
    traceback), not mask it while matching the usage errors."""
    from got_data.cli import root as cli

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        cli.main(["--version"])


def test_schema_export_onto_a_file_is_one_line_and_leaves_it(tmp_path):
    target = tmp_path / "schemas.json"
    target.write_text("mine\n")
    assert_one_error_line(got_data_cli("schema", "export", "--out", str(target)), str(target), "give a folder")
    assert target.read_text() == "mine\n"


@pytest.mark.parametrize("command", ["validate", "view"])
def test_an_empty_folder_is_one_line_naming_the_shard_pattern(tmp_path, command):
    result = got_data_cli(command, str(tmp_path))
    assert_one_error_line(result, str(tmp_path), "got-000000.tar")
    assert "{name}" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # view wrote no page


def test_validate_json_to_stdout_keeps_the_tables_on_stderr(tmp_path):
    good = got_data_cli("validate", str(SHARDS / "t2i"), "--json", "-", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    document = json.loads(good.stdout)
    assert document["ok"] is True and document["schema_version"] == SCHEMA_VERSION and document["valid"] > 0
    assert "all shards valid" in good.stderr
    assert not (tmp_path / "-").exists()
    bad = got_data_cli("validate", str(SHARDS / "broken" / "missing_image"), "--json", "-", cwd=tmp_path)
    assert bad.returncode == 1
    document = json.loads(bad.stdout)
    assert document["ok"] is False and document["issue_counts"] == {"missing_member": 1}
    assert "missing_member" in bad.stderr


def test_validate_json_to_a_file(tmp_path):
    report = tmp_path / "report.json"
    result = got_data_cli("validate", str(SHARDS / "edit"), "--json", str(report))
    assert result.returncode == 0 and "all shards valid" in result.stdout
    assert json.loads(report.read_text())["ok"] is True
    assert_one_error_line(got_data_cli("validate", str(SHARDS / "edit"), "--json", str(tmp_path / "no" / "r.json")),
                          "does not exist")
