"""Job documents for tests, in Bacalhau v1 shape."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import wasmtime

ROOT = Path(__file__).resolve().parents[2]
HELLO_WAT = ROOT / "examples" / "wasm" / "hello.wat"


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
