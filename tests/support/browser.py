"""A headless Chromium for tests of the web dashboard: Debian's ``chromium`` package driven
by Playwright for Python. Playwright's own browser builds are never used (nor downloaded):
the browser is the system's, given by path.

A missing ``chromium`` binary or ``playwright`` module skips the test locally and fails it
when ``CI`` is set, like the other services (:mod:`tests.support.services`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests.support.services import in_ci

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "chromium"  # Debian's launcher, /usr/bin/chromium (.ci/run installs it)
LAUNCH_TIMEOUT_MS = 30_000


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        _missing(f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium package)")
    assert path is not None
    return path


@contextmanager
def chromium_running() -> Iterator[Browser]:
    """Playwright and one headless Chromium, stopped when the block ends."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            timeout=LAUNCH_TIMEOUT_MS,
            # Chromium's sandbox cannot start as root (it refuses to run unless told
            # --no-sandbox, which is what chromium_sandbox=False passes): as root, which CI
            # is, it runs without one. The only page it loads is the requester's own, on a
            # loopback port.
            chromium_sandbox=os.geteuid() != 0,
        )
        try:
            yield browser
        finally:
            browser.close()
