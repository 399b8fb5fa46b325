"""Identifiers in Bacalhau's shapes: ``j-<uuid>``, ``e-<uuid>``, ``v-<uuid>``, ``n-<uuid>``."""

from __future__ import annotations

import time
import uuid


def new_job_id() -> str:
    return f"j-{uuid.uuid4()}"


def new_execution_id() -> str:
    return f"e-{uuid.uuid4()}"


def new_evaluation_id() -> str:
    return f"v-{uuid.uuid4()}"


def new_message_id() -> str:
    return uuid.uuid4().hex


def now_ns() -> int:
    """Wall-clock time in Unix nanoseconds, as Bacalhau puts times on the wire."""
    return time.time_ns()
