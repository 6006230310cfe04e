"""Multipart uploads a kill left open are found and aborted (real S3 server: SeaweedFS on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys

from got_data import uri
from got_data.s3_uploads import abort_stale_uploads

# Starts a multipart upload (12 MB: more than one part), then dies without completing or aborting it.
KILLED_WRITER = """
import os, sys
import pyarrow.fs as f
fs = f.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"].split("://")[1], scheme="http", region="us-east-1")
out = fs.open_output_stream(sys.argv[1])
out.write(os.urandom(12 * 1024 * 1024))
out.flush()
os._exit(0)
"""


def test_an_upload_a_kill_left_open_is_aborted_and_never_an_object(s3_bucket):
    key = s3_bucket.removeprefix("s3://") + "/got/got-000000.tar"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, key], check=True, env=os.environ, timeout=60)
    assert not uri.exists(f"s3://{key}")
    elsewhere = abort_stale_uploads(uri.location(f"{s3_bucket}/other"))
    assert elsewhere.aborted == () and elsewhere.skipped is None
    assert abort_stale_uploads(uri.location(f"{s3_bucket}/got")).aborted == ("got/got-000000.tar",)
    assert abort_stale_uploads(uri.location(f"{s3_bucket}/got")).aborted == ()


def test_cleanup_is_skipped_without_credentials_in_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask on a test machine
    skipped = abort_stale_uploads(uri.location("s3://bucket/prefix")).skipped
    assert skipped is not None and skipped.startswith("no credentials found")
    assert abort_stale_uploads(uri.location(tmp_path)).skipped == "not an s3:// prefix"
