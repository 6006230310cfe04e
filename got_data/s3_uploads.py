"""Multipart uploads a killed run left open under an S3 prefix: listed and aborted at the next start.

A shard is uploaded as one multipart upload that becomes an object only when it completes, so a kill
mid-upload publishes nothing, but the parts stay stored (and billed) until the upload is aborted.
pyarrow.fs has no call for that, so boto3 makes these two requests (ListMultipartUploads,
AbortMultipartUpload) against the same endpoint (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`) with
credentials from the standard chain (environment, config files, instance role). Without credentials
the cleanup is skipped (`StaleUploads.skipped` says why), which leaves stray parts, never a wrong object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from got_data.uri import Location, StorageError


@dataclass(frozen=True)
class StaleUploads:
    aborted: tuple[str, ...] = ()  # keys whose open uploads were aborted
    skipped: str | None = None  # why nothing was tried


def abort_stale_uploads(prefix: Location) -> StaleUploads:
    """Abort every open multipart upload under an `s3://` prefix; a no-op elsewhere."""
    if not prefix.uri.startswith("s3://"):
        return StaleUploads(skipped="not an s3:// prefix")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                    or "us-east-1")
    if session.get_credentials() is None:
        return StaleUploads(skipped="no credentials found (environment, config files or instance role)")
    bucket, _, key_prefix = prefix.path.partition("/")
    client = session.client("s3")
    aborted = []
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key_prefix + "/")
        for page in pages:
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted.append(upload["Key"])
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"cannot clean up open uploads under {prefix.uri}: {exc}") from exc
    return StaleUploads(aborted=tuple(aborted))
