"""The shared deadline thread that stops runs on time, without a thread per run."""

from __future__ import annotations

import threading
import time

from compute.executors.interrupts import Deadlines, RunControls, StopReason
from tests.support.wait import wait_until


def test_each_callback_runs_once_not_before_its_time_and_cancelled_ones_never() -> None:
    deadlines = Deadlines()
    fired: dict[str, float] = {}
    lock = threading.Lock()

    def note(name: str) -> None:
        with lock:
            fired[name] = time.monotonic()

    now = time.monotonic()
    due = {"third": now + 0.30, "first": now + 0.10, "second": now + 0.20}
    for name, when in due.items():
        deadlines.call_at(when, lambda name=name: note(name))  # type: ignore[misc]
    cancelled = deadlines.call_at(now + 0.05, lambda: note("cancelled"))
    deadlines.cancel(cancelled)
    wait_until(lambda: len(fired) == 3, timeout_s=10, message="three callbacks")
    assert set(fired) == set(due)
    assert all(fired[name] >= due[name] for name in due)
    assert len(deadlines) == 0


def test_a_deadline_in_the_past_fires_at_once_and_a_failing_callback_stops_nothing() -> None:
    deadlines = Deadlines()
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("callback failed")

    deadlines.call_at(time.monotonic() - 1, boom)
    deadlines.call_at(time.monotonic() - 1, done.set)
    assert done.wait(10)


def test_a_blocked_callback_does_not_hold_back_the_next_deadline() -> None:
    deadlines = Deadlines()
    release, later = threading.Event(), threading.Event()
    deadlines.call_at(time.monotonic(), lambda: release.wait(30))
    deadlines.call_at(time.monotonic() + 0.05, later.set)
    try:
        assert later.wait(10)
    finally:
        release.set()


def test_a_tracked_run_is_stopped_at_its_deadline_on_the_shared_thread() -> None:
    controls = RunControls()
    before = threading.active_count()
    with controls.track("e-1", 0.05) as slow, controls.track("e-2", 60) as fast:
        assert threading.active_count() <= before + 1  # one watcher, not one per run
        wait_until(lambda: slow.reason is not None, timeout_s=10, message="the deadline")
        assert slow.reason is StopReason.TIMEOUT
        assert fast.reason is None
    assert fast.reason is None  # its deadline was cancelled as the run ended
