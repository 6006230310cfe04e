"""Multipart uploads a killed run left open under an S3 prefix: listed and aborted at the next start.

A shard is uploaded as one multipart upload that becomes an object only when it completes, so a kill
mid-upload publishes nothing, but the parts stay stored (and billed) until the upload is aborted.
pyarrow.fs has no call for that, so these two requests (ListMultipartUploads, AbortMultipartUpload)
are signed here with AWS Signature Version 4, path-style, against the same endpoint and with the
credentials of the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
Credentials from config files or an instance role are not read here: the cleanup is then skipped
(`StaleUploads.skipped` says why), which leaves stray parts, never a wrong object.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from got_data.uri import Location, StorageError

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class StaleUploads:
    aborted: tuple[str, ...] = ()  # keys whose open uploads were aborted
    skipped: str | None = None  # why nothing was tried


def _endpoint() -> str:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return (custom or f"https://s3.{region}.amazonaws.com").rstrip("/")


def _sign(method: str, url: str, access: str, secret: str, token: str | None, region: str) -> dict[str, str]:
    """SigV4 headers for a request without a body."""
    parts = urllib.parse.urlsplit(url)
    now = _dt.datetime.now(_dt.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                     for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    headers = {"host": parts.netloc, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, parts.path or "/", query, *(f"{k}:{headers[k]}" for k in sorted(headers)), "",
                           names, _EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={names}, Signature={signature}"
    del headers["host"]
    return headers


def _request(method: str, url: str) -> bytes:
    access, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    headers = _sign(method, url, access, secret, os.environ.get("AWS_SESSION_TOKEN"), region)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers), timeout=30) as reply:
            return reply.read()
    except (urllib.error.URLError, OSError) as exc:
        raise StorageError(f"{method} {urllib.parse.urlsplit(url).path}: {getattr(exc, 'code', '')} {exc}") from exc


def abort_stale_uploads(prefix: Location) -> StaleUploads:
    """Abort every open multipart upload under an `s3://` prefix; a no-op elsewhere."""
    if not prefix.uri.startswith("s3://"):
        return StaleUploads(skipped="not an s3:// prefix")
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        return StaleUploads(skipped="credentials are not in the environment")
    bucket, _, key_prefix = prefix.path.partition("/")
    base = f"{_endpoint()}/{urllib.parse.quote(bucket)}"
    listing = ET.fromstring(_request("GET", f"{base}?{urllib.parse.urlencode({'uploads': '', 'prefix': key_prefix + '/'})}"))
    aborted = []
    for upload in listing.iter(f"{_NS}Upload"):
        key, upload_id = upload.findtext(f"{_NS}Key"), upload.findtext(f"{_NS}UploadId")
        if key and upload_id:
            _request("DELETE", f"{base}/{urllib.parse.quote(key)}?{urllib.parse.urlencode({'uploadId': upload_id})}")
            aborted.append(key)
    return StaleUploads(aborted=tuple(aborted))
