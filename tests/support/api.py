"""Talking to a requester's API from tests: submit a job and wait for it to end."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.wait import wait_until

TERMINAL = {"Completed", "Failed", "Stopped"}


def run_job(
    client: httpx.Client, job: dict[str, Any], timeout_s: float = 30.0
) -> tuple[str, dict[str, Any]]:
    """PUT ``job``, then poll until it ends: its ID and its final state (the API's Job)."""
    job_id = str(client.put("/api/v1/orchestrator/jobs", json={"Job": job}).json()["JobID"])

    def ended() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
        return body if body["State"]["StateType"] in TERMINAL else None

    return job_id, wait_until(ended, timeout_s, 0.05, f"job {job_id} to end")
