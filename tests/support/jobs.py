"""Job documents for tests, in Bacalhau v1 shape."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import wasmtime

from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
HELLO_WAT = ROOT / "examples" / "wasm" / "hello.wat"
TERMINAL_STATES = ("Completed", "Failed", "Stopped")


def data_url(payload: bytes) -> str:
    return "data:application/wasm;base64," + base64.b64encode(payload).decode()


def wasm_job(
    wat: Path = HELLO_WAT,
    args: list[str] | None = None,
    count: int = 1,
    **task: Any,
) -> dict[str, Any]:
    module = bytes(wasmtime.wat2wasm(wat.read_text()))
    return {
        "Type": "batch",
        "Count": count,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "wasm",
                    "Params": {"EntryModule": "/app/main.wasm", "Parameters": args or []},
                },
                "InputSources": [
                    {
                        "Source": {"Type": "inline", "Params": {"URL": data_url(module)}},
                        "Target": "/app/main.wasm",
                    }
                ],
                "Publisher": {"Type": "local"},
                **task,
            }
        ],
    }


def noop_job(count: int = 1, sleep_s: float = 0.0, **task: Any) -> dict[str, Any]:
    return {
        "Type": "batch",
        "Count": count,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "noop", "Params": {"SleepSeconds": sleep_s, "Stdout": "ok\n"}},
                "Publisher": {"Type": "local"},
                **task,
            }
        ],
    }


def run_job(api_port: int, job: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """Submit ``job`` to the requester's API on 127.0.0.1:``api_port`` and wait until it ends;
    returns the ended job in wire shape, its executions under the key ``executions``."""
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
        job_id = client.put("/api/v1/orchestrator/jobs", json={"Job": job}).json()["JobID"]

        def ended() -> dict[str, Any] | None:
            found: dict[str, Any] = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()
            state = found["Job"]["State"]["StateType"]
            return found["Job"] if state in TERMINAL_STATES else None

        ended_job = wait_until(ended, timeout_s, 0.05, f"job {job_id} to end")
        executions = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
    ended_job["executions"] = executions["Items"]
    return ended_job
