"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol.peer import hub


@pytest.fixture
def hubs() -> Iterator[list[hub.PeerHub]]:
    """``peer://`` hubs a test starts (appended here), closed when it ends."""
    started: list[hub.PeerHub] = []
    yield started
    for item in started:
        item.close()
