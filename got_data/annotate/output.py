"""Where a run's output goes, and the commit protocol that keeps it whole where there is no rename.

A local `--out` is written in place, exactly as before: shards under hidden `.partial` names renamed
when complete, the journal appended and fsynced under `_state/`.

A bucket `--out` (`s3://bucket/prefix`) is staged: the writer and the journal work in a private local
folder, and each finished shard is committed to the bucket by uploading its index, then its tar,
each under its final key in one upload (a multipart upload becomes an object only when it
completes). Only then is the shard journaled, and the journal objects (`_state/shards.jsonl`,
`_state/rejects.jsonl`, and the statistics log `_state/stats.jsonl` with `stats.json`) are replaced
whole. So the bucket never shows part of a shard under a final key, and the journal lists only
committed shards. A kill mid-upload leaves no object; a kill between
the tar's upload and the journal is reconciled on resume (the tar's records are read back), exactly
as for a local folder; the resume fetches the journal from the bucket and writes the same keys, and
first aborts the multipart uploads a kill left open under the prefix (`s3_uploads.py`).
Rejects journaled after the last commit and lost by a kill are simply redone by the resume.

An annotator (`annotators.py`) opens the same `--out` for its partition: its journal and statistics
live under `_state/pNNN/`, a bucket output gets its own staging folder, and it leaves the aborting of
stale uploads to the driver (which does it once, before any annotator starts uploading).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from got_data import uri
from got_data.s3_uploads import abort_stale_uploads
from got_data.shards.layout import index_filename, tar_filename
from got_data.shards.writer import ShardInfo
from got_data.uri import Location

STATE_DIR = "_state"
JOURNAL_FILES = ("shards.jsonl", "rejects.jsonl", "stats.jsonl")  # what a resume needs from _state/


class OutputFolder:
    """A run's `--out`: `staging` is the local folder the writer and journal use; `location` is where
    the output lives (the same folder, or a bucket prefix the commit step uploads to)."""

    def __init__(self, out: str | os.PathLike[str] | Location, partition: str | None = None) -> None:
        self.location = uri.location(out)
        self.partition = partition
        self.state_rel = STATE_DIR if partition is None else f"{STATE_DIR}/{partition}"  # this writer's journal
        self.aborted_uploads: tuple[str, ...] = ()
        if self.location.remote:
            digest = hashlib.sha256(self.location.uri.encode("utf-8")).hexdigest()[:16]
            suffix = "" if partition is None else f"-{partition}"
            self.staging = Path(tempfile.gettempdir()) / f"got-data-out-{os.getuid()}-{digest}{suffix}"
            shutil.rmtree(self.staging, ignore_errors=True)  # what a killed run left is redone, never reused
            if partition is None:  # an annotator's neighbours are uploading: only the driver aborts
                self.aborted_uploads = abort_stale_uploads(self.location).aborted  # a killed run's open uploads
        else:
            self.staging = out if isinstance(out, Path) else Path(self.location.path)
        self.staging.mkdir(parents=True, exist_ok=True)

    @property
    def remote(self) -> bool:
        return self.location.remote

    def fetch_state(self) -> None:
        """Bring the bucket's journal into the staging folder (a resume on any machine)."""
        if not self.remote:
            return
        for name in JOURNAL_FILES:
            source = self.location.join(self.state_rel, name)
            if uri.exists(source):
                target = self.state_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(uri.read_bytes(source))

    def publish(self, relative: str) -> None:
        """Put a finished staged file under its final key (nothing to do for a local folder)."""
        if self.remote:
            uri.upload(self.staging / relative, self.location.join(relative))

    @property
    def state_dir(self) -> Path:
        """The local folder of this writer's journal: `_state/`, or `_state/pNNN/` for an annotator."""
        return self.staging / self.state_rel

    def publish_state(self, *names: str) -> None:
        """Replace the named files of this writer's journal in the bucket with the staged ones (whole objects)."""
        for name in names:
            if (self.state_dir / name).exists():
                self.publish(f"{self.state_rel}/{name}")

    def commit_shard(self, info: ShardInfo, name: str) -> None:
        """Upload a finished shard: its index first, then the tar (the tar's key means complete);
        the staged copies go, so local disk holds at most the shard in progress."""
        if not self.remote:
            return
        for file in (index_filename(name, info.index), tar_filename(name, info.index)):
            self.publish(file)
        for file in (index_filename(name, info.index), tar_filename(name, info.index)):
            (self.staging / file).unlink(missing_ok=True)

    def has_shard(self, name: str, index: int) -> bool:
        return uri.exists(self.location.join(tar_filename(name, index)))

    def close(self) -> None:
        """Drop the staging folder of a bucket output (a local folder is the output itself)."""
        if self.remote:
            shutil.rmtree(self.staging, ignore_errors=True)

    def __str__(self) -> str:
        return self.location.uri
