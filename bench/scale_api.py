"""The requester's HTTP API as ``bench.scale`` uses it: count connected compute nodes, submit
noop jobs back to back, and follow them until every one is terminal (paging the job list)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
PAGE = 500

NOOP_JOB: dict[str, Any] = {
    "Job": {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}],
    }
}


def pages(client: httpx.Client, path: str, key: str, params: dict[str, str]) -> Iterator[Any]:
    """Every item of a paged list (``NextToken`` followed to the end)."""
    token = ""
    while True:
        query = {**params, "limit": str(PAGE), **({"next_token": token} if token else {})}
        response = client.get(path, params=query)
        response.raise_for_status()
        body = response.json()
        yield from body.get(key) or []
        token = body.get("NextToken") or ""
        if not token:
            return


def connected_compute(client: httpx.Client) -> int:
    nodes = pages(client, NODES, "Nodes", {"filter-status": "CONNECTED"})
    return sum(1 for node in nodes if node["Info"].get("NodeType") == "Compute")


def submit(client: httpx.Client, count: int, concurrency: int) -> list[str]:
    def one(_: int) -> str:
        response = client.put(JOBS, json=NOOP_JOB)
        response.raise_for_status()
        return str(response.json()["JobID"])

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


@dataclass
class Outcome:
    """Where the submitted jobs ended, and the span from the first one's creation to the
    last one's last change (the requester's own timestamps, not the poller's)."""

    states: Counter[str] = field(default_factory=Counter)
    first_created_ns: int = 0
    last_modified_ns: int = 0
    timed_out: bool = False

    @property
    def span_s(self) -> float:
        return max(self.last_modified_ns - self.first_created_ns, 0) / 1e9

    @property
    def terminal(self) -> int:
        return sum(n for state, n in self.states.items() if state in TERMINAL)


class Follower:
    """Polls the job list until every job of ``ids`` is terminal. Pages that hold only
    terminal jobs are not read again (a terminal job stays terminal), so a poll costs the
    pages still moving, not the whole history."""

    def __init__(self, client: httpx.Client, ids: list[str]) -> None:
        self._client = client
        self._waiting = set(ids)
        self._done: dict[str, tuple[str, int, int]] = {}
        self._resume = ""

    def poll(self) -> Outcome:
        token = self._resume
        while True:
            query = {"limit": str(PAGE), "order_by": "created_at"}
            if token:
                query["next_token"] = token
            response = self._client.get(JOBS, params=query)
            response.raise_for_status()
            body = response.json()
            moving = self._read(body.get("Items") or [])
            next_token = body.get("NextToken") or ""
            if not moving and next_token and token == self._resume:
                self._resume = next_token
            if not next_token:
                return self.outcome()
            token = next_token

    def _read(self, items: list[dict[str, Any]]) -> bool:
        """Record what the page says; True when a job of ours on it is still moving."""
        moving = False
        for job in items:
            job_id = job["ID"]
            if job_id not in self._waiting and job_id not in self._done:
                continue
            state = job["State"]["StateType"]
            if state in TERMINAL:
                self._waiting.discard(job_id)
                self._done[job_id] = (state, job["CreateTime"], job["ModifyTime"])
            else:
                moving = True
        return moving

    def outcome(self) -> Outcome:
        result = Outcome()
        for state, _, _ in self._done.values():
            result.states[state] += 1
        result.states["(not terminal)"] = len(self._waiting)
        if self._done:
            result.first_created_ns = min(created for _, created, _ in self._done.values())
            result.last_modified_ns = max(modified for _, _, modified in self._done.values())
        return result

    def wait(self, timeout_s: float, every_s: float, check: Callable[[], None]) -> Outcome:
        """Poll every ``every_s`` until all are terminal or ``timeout_s`` has passed;
        ``check`` raises when the requester died."""
        deadline = time.monotonic() + timeout_s
        while True:
            check()
            outcome = self.poll()
            if not self._waiting:
                del outcome.states["(not terminal)"]
                return outcome
            if time.monotonic() >= deadline:
                outcome.timed_out = True
                return outcome
            time.sleep(every_s)
