"""Stop switches for running executions: one per run, thrown by its deadline or by cancel.

Executors share the outcomes of an interrupted run, so a job ends the same way whatever
engine ran it:

* timeout      -> ``RunOutcome(124, "execution timed out after Ns")`` (124, like GNU timeout)
* cancelled    -> ``RunOutcome(130, "cancelled")`` (128 + SIGINT)
* output limit -> ``RunOutcome(153, <what was exceeded>)`` (128 + SIGXFSZ, what a process
  writing past its file size limit gets)
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from compute.executors.base import RunOutcome
from protocol.errors import ExecutionError

log = logging.getLogger(__name__)

TIMEOUT_EXIT_CODE = 124
CANCELLED_EXIT_CODE = 130
OUTPUT_LIMIT_EXIT_CODE = 153
EARLY_CANCELS_REMEMBERED = 1024


class StopReason(enum.StrEnum):
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    OUTPUT_LIMIT = "output limit"


class RunControl:
    """The stop switch of one run. It is thrown at most once; the first reason wins.

    Code that can interrupt the running task registers a hook with :meth:`on_stop`; code
    that merely waits calls :meth:`wait`, which also notices the deadline by itself.
    """

    def __init__(self, execution_id: str, timeout_s: float) -> None:
        self.execution_id = execution_id
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reason: StopReason | None = None
        self._detail = ""
        self._hooks: list[Callable[[], None]] = []

    @property
    def reason(self) -> StopReason | None:
        return self._reason

    def stop(self, reason: StopReason, detail: str = "") -> bool:
        """Throw the switch; False when it was already thrown. ``detail`` says what happened
        when the reason alone does not (which limit was exceeded)."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            self._detail = detail
            hooks = list(self._hooks)
        self._stopped.set()
        log.info("event=run_stop execution=%s reason=%s", self.execution_id, reason)
        for hook in hooks:
            hook()
        return True

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when the switch is thrown, or now if it already was."""
        with self._lock:
            if self._reason is None:
                self._hooks.append(hook)
                return
        hook()

    def wait(self, seconds: float) -> StopReason | None:
        """Wait up to ``seconds`` for the switch, throwing it when the deadline passes first."""
        limit = seconds
        if self._deadline is not None:
            limit = min(limit, max(0.0, self._deadline - time.monotonic()))
        self._stopped.wait(limit)
        deadline = self._deadline
        if self._reason is None and deadline is not None and time.monotonic() >= deadline:
            self.stop(StopReason.TIMEOUT)
        return self._reason

    def outcome(self) -> RunOutcome:
        """The outcome of a run stopped for :attr:`reason`."""
        if self._reason is StopReason.TIMEOUT:
            return RunOutcome(
                exit_code=TIMEOUT_EXIT_CODE,
                error=f"execution timed out after {self.timeout_s:g}s",
            )
        if self._reason is StopReason.CANCELLED:
            return RunOutcome(exit_code=CANCELLED_EXIT_CODE, error="cancelled")
        if self._reason is StopReason.OUTPUT_LIMIT:
            return RunOutcome(
                exit_code=OUTPUT_LIMIT_EXIT_CODE, error=self._detail or "output limit exceeded"
            )
        raise RuntimeError(f"execution {self.execution_id} was not stopped")


class Deadlines:
    """One thread that calls each callback when its time comes, for every run of a node: a
    timer thread per run would cost a thread start (and a thread) per execution.

    :meth:`call_at` returns a handle for :meth:`cancel`; a callback runs on a thread of its
    own, and one that raises is logged. The watching thread starts with the first deadline
    and lives as long as the process (daemon)."""

    def __init__(self, name: str = "deadlines") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, Callable[[], object]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], object]) -> int:
        """Call ``callback`` at ``when`` (``time.monotonic()`` seconds)."""
        with self._cond:
            handle = next(self._ids)
            self._due[handle] = callback
            heapq.heappush(self._heap, (when, handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if self._heap[0][1] == handle:
                self._cond.notify()
            return handle

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._due.pop(handle, None)  # its heap entry is skipped when it comes up

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][1] not in self._due:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    when, handle = self._heap[0]
                    wait_s = when - time.monotonic()
                    if wait_s <= 0:
                        heapq.heappop(self._heap)
                        callback = self._due.pop(handle)
                        break
                    self._cond.wait(wait_s)
            # On a thread of its own: a stop hook may block (a container engine slow to
            # kill), and must not hold back the deadlines after it. Runs that time out are
            # few; it is the runs that end in time that must not cost a thread.
            threading.Thread(
                target=self._call, args=(callback,), name=self._name, daemon=True
            ).start()

    @staticmethod
    def _call(callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            log.exception("event=deadline_callback_failed")


DEADLINES = Deadlines()
"""The process's deadline thread, shared by every executor's runs."""


class RunControls:
    """The running executions of one executor, so that ``cancel(execution_id)`` reaches them.

    A cancel that arrives before its run starts is remembered (a bounded number of them), and
    the run then ends as cancelled at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunControl] = {}
        self._early_cancels: OrderedDict[str, None] = OrderedDict()

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    @contextmanager
    def track(
        self, execution_id: str, timeout_s: float, *, watchdog: bool = True
    ) -> Iterator[RunControl]:
        """Register a run for its duration. With ``watchdog``, :data:`DEADLINES` throws the
        switch at the deadline; without, the run must call :meth:`RunControl.wait` to notice
        it."""
        control = RunControl(execution_id, timeout_s)
        with self._lock:
            if execution_id in self._runs:
                raise ExecutionError(f"execution {execution_id} is already running here")
            self._runs[execution_id] = control
            cancelled_early = execution_id in self._early_cancels
            if cancelled_early:
                del self._early_cancels[execution_id]
        if cancelled_early:
            control.stop(StopReason.CANCELLED)
        timer: int | None = None
        if watchdog and timeout_s > 0:
            timer = DEADLINES.call_at(
                time.monotonic() + timeout_s, lambda: control.stop(StopReason.TIMEOUT)
            )
        try:
            yield control
        finally:
            if timer is not None:
                DEADLINES.cancel(timer)
            with self._lock:
                self._runs.pop(execution_id, None)

    def cancel(self, execution_id: str) -> bool:
        """Stop the run; True when it was running here."""
        with self._lock:
            control = self._runs.get(execution_id)
            if control is None:
                self._early_cancels[execution_id] = None
                while len(self._early_cancels) > EARLY_CANCELS_REMEMBERED:
                    self._early_cancels.popitem(last=False)
                log.info("event=cancel_before_start execution=%s", execution_id)
                return False
        control.stop(StopReason.CANCELLED)
        return True
