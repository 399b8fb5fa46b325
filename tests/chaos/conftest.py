"""Fixtures of the chaos tests: the node processes a test starts, stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.nodes import NodeProc


@pytest.fixture
def nodes() -> Iterator[list[NodeProc]]:
    """Append each node the test starts; all are stopped (SIGTERM) after it."""
    started: list[NodeProc] = []
    yield started
    for node in started:
        node.stop()
