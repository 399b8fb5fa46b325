"""Every route of the requester's API, fuzzed from its own ``/openapi.json`` (schemathesis):
whatever the path, query or body, the answer is never a server error, and its status, content
type and body are the ones the document declares (Bacalhau's names, the wire models'
schemas). The API runs as it does in ``bacalao serve``: uvicorn over HTTP, the real
orchestrator, a SQLite store on disk; only the bus is a recorder (no compute node answers, so
jobs stay where scheduling leaves them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from protocol.node import NodeInfo, NodeType
from requester.api import create_app
from requester.orchestrator import Orchestrator, RequesterConfig
from requester.server import APIServer
from requester.store import JobStore
from tests.support.recorders import Recorder


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("api")
    with JobStore(folder / "jobs.db") as store:
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        orchestrator = Orchestrator(info, store, Recorder(), RequesterConfig(settle_s=0))
        orchestrator.start()
        server = APIServer(create_app(orchestrator), "127.0.0.1", 0)
        port = server.start()
        try:
            yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
        finally:
            server.stop()
            orchestrator.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case[Any],
) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    case.call_and_validate(checks=checks, timeout=10)
