"""The Celery side: solo workers as separate processes, tasks sent with ``.delay()``."""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._measure import Outcome, throughput
from bench._procs import Processes, Started, executable, wait_until

REPO = Path(__file__).resolve().parents[1]
APP_MODULE = "bench.celery_app"


def available() -> bool:
    return importlib.util.find_spec("celery") is not None


def load_app(url: str) -> ModuleType:
    """:mod:`bench.celery_app` pointed at ``url`` (broker and result backend)."""
    os.environ["BACALAO_BENCH_CELERY_URL"] = url
    module = importlib.import_module(APP_MODULE)
    module.app.conf.update(broker_url=url, result_backend=url)
    return module


def start_workers(
    procs: Processes,
    module: ModuleType,
    url: str,
    *,
    count: int = 2,
    log_level: str = "warning",
    ready_timeout_s: float = 60.0,
) -> tuple[Started, ...]:
    """Start ``count`` solo workers and wait until each answers a ping."""
    exe = executable("celery")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {module.URL_ENV: url, "PYTHONPATH": path}
    workers = tuple(
        procs.start(
            f"w{i + 1}",
            [
                *(exe, "-A", APP_MODULE, "worker", "--pool", "solo", "--concurrency", "1"),
                *("-n", f"w{i + 1}@%h", "--loglevel", log_level),
            ],
            env=env,
            cwd=REPO,
        )
        for i in range(count)
    )
    wait_until(
        lambda: _answering(module.app, count),
        what=f"{count} celery workers answering a ping",
        timeout_s=ready_timeout_s,
        watch=workers,
    )
    return workers


def _answering(app: Any, count: int) -> bool | None:
    replies = app.control.ping(timeout=0.5) or []
    names = {name for reply in replies for name in reply}
    return True if len(names) >= count else None


def _done_ns(result: Any) -> int:
    done = result.date_done
    if isinstance(done, str):
        done = datetime.datetime.fromisoformat(done)
    if not isinstance(done, datetime.datetime):
        return 0
    if done.tzinfo is None:
        done = done.replace(tzinfo=datetime.UTC)
    return int(done.timestamp() * 1e9)


class Runner:
    """Sends the task standing for a bacalao job kind and waits for its results."""

    def __init__(self, module: ModuleType) -> None:
        self.tasks: dict[str, Callable[[], Any]] = {
            "noop": lambda: module.echo_task.delay("bench"),
            "wasm": lambda: module.true_task.delay(),
        }
        self.timeout_error: Any = importlib.import_module("celery.exceptions").TimeoutError

    def back_to_back(self, kind: str, jobs: int, timeout_s: float) -> Outcome:
        send = self.tasks[kind]
        first = time.time_ns()
        results = [send() for _ in range(jobs)]
        submit_s = (time.time_ns() - first) / 1e9
        deadline = time.monotonic() + timeout_s
        finished = 0
        for result in results:
            try:
                result.get(timeout=max(0.1, deadline - time.monotonic()), propagate=False)
            except self.timeout_error:
                break
            finished += 1
        done = results[:finished]
        completed = sum(1 for result in done if result.state == "SUCCESS")
        last = max((_done_ns(result) for result in done), default=0)
        note = f"{jobs - finished} not finished in {timeout_s:g} s" if finished < jobs else ""
        return Outcome(
            jobs=jobs,
            failed=jobs - completed,
            timed_out=finished < jobs,
            throughput=throughput(finished, first, last),
            submit_rate=jobs / submit_s if submit_s > 0 else None,
            note=note,
        )

    def sequential(self, kind: str, jobs: int, timeout_s: float) -> Outcome:
        """One task at a time; latency from the client's send time to the worker's date_done."""
        send = self.tasks[kind]
        latencies: list[float] = []
        failed = 0
        for _ in range(jobs):
            sent = time.time_ns()
            result = send()
            try:
                result.get(timeout=timeout_s, propagate=False)
            except self.timeout_error:
                failed += 1
                continue
            if result.state != "SUCCESS":
                failed += 1
                continue
            latencies.append((_done_ns(result) - sent) / 1e6)
        return Outcome(jobs=jobs, failed=failed, latencies_ms=latencies)
