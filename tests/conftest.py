"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import chromium_running
from tests.support.docker_engine import DockerEngine, docker_engine_running
from tests.support.ipfs_server import IPFSNode, ipfs_node_running
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.rabbitmq import RabbitMQServer, rabbitmq_server
from tests.support.s3_server import S3Server, s3_server_running
from tests.support.services import RedisServer, redis_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd for the whole session (``.host``, ``.image`` = local/busybox:1)."""
    with docker_engine_running() as engine:
        yield engine


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server for the whole session (``.endpoint``, ``.client()``, ``.bucket()``)."""
    with s3_server_running(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The moto server's credentials in this process's AWS environment, for code under test."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return s3_server


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere boto3 looks, so ``s3`` plugins are not installed."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A RabbitMQ broker for the whole session (``.url``, ``.restart()``, ``.ctl(...)``)."""
    with rabbitmq_server(tmp_path_factory.mktemp("rabbitmq")) as server:
        yield server


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server for the whole session (``.url``)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (``.url(db)``, ``.create_database()``)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IPFSNode]:
    """A js-ipfs daemon for the whole session, offline in its own network namespace
    (``.api_multiaddr``, ``.api_url``, ``.client()`` = an ipfshttpclient Client)."""
    with ipfs_node_running(tmp_path_factory.mktemp("ipfs")) as node:
        yield node


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright; a test opens its own
    ``browser.new_context()``. Skipped locally without chromium or playwright, failed when
    ``CI`` is set. One per test, not per session: while Playwright's sync API is open, this
    thread counts as running its event loop, so ``asyncio.run`` in a later test would fail.
    Ask for it after the fixtures that start a node."""
    with chromium_running() as running:
        yield running
