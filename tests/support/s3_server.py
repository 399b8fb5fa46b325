"""A real S3 API for tests: ``moto_server`` (PyPI ``moto[server]``) on a free loopback port.

One server per session; tests keep apart by using their own buckets (:meth:`S3Server.bucket`).
Code under test finds it through the standard AWS environment (:data:`S3Server.env`).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.services import free_port, port_open, require_binary
from tests.support.wait import wait_until

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # moto accepts any credentials
REGION = "us-east-1"


@dataclass
class S3Server:
    port: int
    process: subprocess.Popen[bytes]
    _client: Any = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point boto3's standard chain at this server's account."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        """A boto3 S3 client for arranging and checking test data."""
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
                config=Config(s3={"addressing_style": "path"}),
            )
        return self._client

    def bucket(self, versioned: bool = False) -> str:
        """A new, empty bucket with a unique name."""
        name = f"test-{uuid.uuid4().hex[:16]}"
        client = self.client()
        client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def s3_server_running(workdir: Path) -> Iterator[S3Server]:
    binary = require_binary("moto_server")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    server = S3Server(port=port, process=process)
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, 30, message="moto_server")
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited: {(workdir / 'moto.log').read_text()}")
        yield server
    finally:
        server.stop()
        log.close()
