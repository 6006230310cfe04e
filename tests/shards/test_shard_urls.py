"""webdataset runs a shard name starting with `pipe:` as a shell command: shard paths from our API are
resolved to absolute local files first, so no user string reaches a shell."""

from __future__ import annotations

import shutil

import pytest
import webdataset as wds

from got_data.errors import ShardError
from got_data.shards import decode_sample, iter_samples, resolve_shard_paths

COMMAND = "pipe:touch hacked"
SHARD_NAMED_LIKE_A_COMMAND = "pipe:touch hacked .tar"  # to a shell: touch the files `hacked` and `.tar`


def test_a_pipe_url_is_refused_with_a_clear_error_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ShardError, match="is not a local file: shards are read from local paths only"):
        resolve_shard_paths(COMMAND)
    with pytest.raises(ShardError, match="not a local file"):
        list(iter_samples([COMMAND]))
    assert not (tmp_path / "hacked").exists()


@pytest.mark.parametrize("given", [SHARD_NAMED_LIKE_A_COMMAND, "pipe:touch hack*"])
def test_a_file_named_like_a_pipe_url_is_read_as_that_file(tmp_path, monkeypatch, shards_dir, given):
    """The name a user gives, file or glob, comes back as an absolute path: webdataset opens it as a file."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(shards_dir / "t2i" / "got-000000.tar", tmp_path / SHARD_NAMED_LIKE_A_COMMAND)
    [resolved] = resolve_shard_paths(given)
    assert resolved == tmp_path / SHARD_NAMED_LIKE_A_COMMAND and resolved.is_absolute()
    urls = [str(path) for path in resolve_shard_paths(given)]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).map(decode_sample))
    assert len(samples) == 3
    assert not (tmp_path / "hacked").exists()
