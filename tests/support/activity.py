"""What a compute node's own records (``activity.jsonl``, a line per finished run) say it ran."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    execution_id: str
    job_id: str
    start_ns: int
    end_ns: int
    cpu: float


def runs_of(data_dir: Path) -> list[Run]:
    """Every run the node in ``data_dir`` finished, from its activity log."""
    path = data_dir / "activity.jsonl"
    if not path.exists():
        return []
    return [
        Run(r["execution_id"], r["job_id"], r["start_ns"], r["end_ns"], r["cpu"])
        for r in map(json.loads, path.read_text().splitlines())
    ]


def peak_cpu(runs: list[Run]) -> float:
    """The most CPU the runs held at one instant (a run ending frees its CPU before one
    starting at the same nanosecond takes it)."""
    events = sorted([(r.start_ns, r.cpu) for r in runs] + [(r.end_ns, -r.cpu) for r in runs])
    running = peak = 0.0
    for _, cpu in events:
        running += cpu
        peak = max(peak, running)
    return peak
