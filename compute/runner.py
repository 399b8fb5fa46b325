"""The execution runner: stage inputs, run the executor, publish results, report back.

Staging is bounded and cancellable: it has the job's execution timeout (or the node's
default) to finish, and a cancel stops it at once, so a slow or dripping source cannot hold the
node's capacity for ever. It runs under a stop switch (:class:`RunControl`) that the deadline
or :meth:`Runner.cancel` throws; a provider that can be interrupted mid-transfer
(:class:`InterruptibleStorage`, e.g. urlDownload) is handed the switch, any other is checked
between inputs. Bacalhau puts staging and the run under one execution-timeout deadline; here
the executor then gets its own full execution timeout, so its timeout and its message mean
what the job says (a run holds the node for at most twice the timeout, plus publishing).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from compute.executors.base import Executor, Mount, RunOutcome, RunRequest
from compute.executors.interrupts import RunControl, RunControls, StopReason
from compute.publishers.base import Publisher
from compute.registry import Registry
from compute.result_hash import result_hash
from compute.storage.base import StorageProvider
from protocol.errors import BacalaoError, ExecutionError, RetryableExecutionError
from protocol.execution import Execution, RunCommandResult
from protocol.ids import now_ns
from protocol.job import InputSource
from protocol.messages import ComputeError, Message, RunResult
from protocol.resources import Resources
from protocol.verification import verification

log = logging.getLogger("bacalao.compute")


@runtime_checkable
class InterruptibleStorage(Protocol):
    """A storage provider that stops a transfer as soon as ``control`` is thrown (it may
    register an :meth:`RunControl.on_stop` hook that aborts a blocked read)."""

    def prepare_interruptible(
        self, source: InputSource, staging_dir: Path, control: RunControl
    ) -> Mount: ...


@dataclass(frozen=True)
class Plugins:
    executors: Registry[Executor]
    storage: Registry[StorageProvider]
    publishers: Registry[Publisher]


def output_text(kept: str | None, path: Path, limit_bytes: int) -> tuple[str, bool]:
    """A task's output as RunResult carries it, at most ``limit_bytes`` of it, and whether
    it was cut: from memory (``kept``) or else from its file at ``path``."""
    if kept is not None:
        data = kept.encode("utf-8")
    else:
        try:
            with path.open("rb") as handle:
                data = handle.read(limit_bytes + 1)
        except FileNotFoundError:
            return "", False
    return data[:limit_bytes].decode("utf-8", "replace"), len(data) > limit_bytes


def write_results(results_dir: Path, outcome: RunOutcome) -> None:
    """The result folder as publishers and the verifier read it: ``exitCode``, and the
    ``stdout`` / ``stderr`` files an executor kept in memory."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "exitCode").write_text(str(outcome.exit_code))
    for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
        if text is not None:
            (results_dir / name).write_text(text, encoding="utf-8")


class ActivityLog:
    """One JSON line per finished run (start/end, resources): evidence of what ran when."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._handle: TextIO | None = None  # opened at the first record, kept open

    def record(self, **fields: object) -> None:
        if self._path is None:
            return
        line = json.dumps(fields, sort_keys=True) + "\n"
        with self._lock:
            if self._handle is None:
                self._handle = self._path.open("a", encoding="utf-8")
            self._handle.write(line)
            self._handle.flush()  # whole lines reach the file as runs end, for readers

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


class Runner:
    def __init__(
        self,
        node_id: str,
        plugins: Plugins,
        work_dir: Path,
        default_timeout_s: float = 1800.0,
        output_limit_bytes: int = 64 * 1024,
        activity: ActivityLog | None = None,
        tamper_results: bool = False,
    ) -> None:
        self._node_id = node_id
        # Tests only: a node whose results differ from every other's (see verification).
        self._tamper_results = tamper_results
        self._plugins = plugins
        self._work_dir = work_dir
        self._default_timeout_s = default_timeout_s
        self._output_limit_bytes = output_limit_bytes
        self._activity = activity or ActivityLog(None)
        self._staging = RunControls()
        self._staged: set[str] = set()  # past staging: a cancel is the executor's alone
        self._run_listeners: list[Callable[[str, int, float], None]] = []

    def on_run_ended(self, listener: Callable[[str, int, float], None]) -> None:
        """Call ``listener(engine, exit_code, seconds)`` as each executor run ends."""
        self._run_listeners.append(listener)

    def cancel(self, execution: Execution) -> None:
        """Stop ``execution`` wherever it is: staging inputs, or running (a cancel that comes
        before either starts is remembered by both, which then end at once)."""
        if execution.id not in self._staged:
            self._staging.cancel(execution.id)
        job = execution.job
        if job is not None and self._plugins.executors.has(job.task.engine.type):
            self._plugins.executors.get(job.task.engine.type).cancel(execution.id)

    def run(
        self, execution: Execution, on_started: Callable[[], None], resources: Resources
    ) -> Message:
        """Run ``execution`` to its end with ``resources`` (what the node holds for it); the
        RunResult or ComputeError to send back. Its files stay until :meth:`clean`."""
        job = execution.job
        assert job is not None, "AskForBid carries the job"
        exec_dir = self._work_dir / execution.id
        try:
            return self._run(execution, exec_dir, on_started, resources)
        except RetryableExecutionError as exc:
            return self._error(execution, str(exc), retryable=True)
        except (ExecutionError, BacalaoError) as exc:
            return self._error(execution, str(exc), retryable=False)
        except Exception as exc:
            log.exception("event=runner_crashed execution=%s", execution.id)
            return self._error(execution, f"internal error: {exc!r}", retryable=True)
        finally:
            self._staged.discard(execution.id)

    def close(self) -> None:
        self._activity.close()

    def results_dir(self, execution_id: str) -> Path:
        """Where the run of ``execution_id`` writes its results (``stdout``, ``stderr``...)."""
        return self._work_dir / execution_id / "results"

    def clean(self, execution_id: str) -> None:
        """Remove what :meth:`run` left of ``execution_id`` on disk (its inputs, results)."""
        shutil.rmtree(self._work_dir / execution_id, ignore_errors=True)

    def _error(self, execution: Execution, message: str, retryable: bool) -> ComputeError:
        log.warning(
            "event=execution_failed execution=%s retryable=%s error=%r",
            execution.id,
            retryable,
            message,
        )
        return ComputeError(
            execution_id=execution.id, job_id=execution.job_id, message=message, retryable=retryable
        )

    def _run(
        self,
        execution: Execution,
        exec_dir: Path,
        on_started: Callable[[], None],
        resources: Resources,
    ) -> Message:
        job = execution.job
        assert job is not None
        task = job.task
        executor = self._plugins.executors.get(task.engine.type)
        timeout_s = float(task.timeouts.execution_timeout or self._default_timeout_s)
        results_dir = exec_dir / "results"  # made by the executor, or below when it is read
        inputs = self._stage(
            execution.id,
            [*task.input_sources, *executor.extra_inputs(task.engine)],
            exec_dir / "inputs",
            timeout_s,
        )
        outputs = []
        for result_path in task.result_paths:
            folder = results_dir / result_path.folder
            folder.mkdir(parents=True)
            outputs.append(Mount(source=folder, target=result_path.path, read_only=False))
        request = RunRequest(
            job_id=job.id,
            execution_id=execution.id,
            engine=task.engine,
            results_dir=results_dir,
            timeout_s=timeout_s,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            env=task.env,
            resources=resources,
            network=task.network,
            # every execution of a job runs the whole task: Bacalhau's partition 0 of Count
            partition_index=0,
            partition_count=job.count,
            node_id=self._node_id,
        )
        on_started()
        started_ns = now_ns()
        outcome = executor.run(request)
        ended_ns = now_ns()
        for listener in self._run_listeners:
            listener(task.engine.type, outcome.exit_code, (ended_ns - started_ns) / 1e9)
        self._activity.record(
            execution_id=execution.id,
            job_id=job.id,
            node_id=self._node_id,
            start_ns=started_ns,
            end_ns=ended_ns,
            cpu=request.resources.cpu,
            memory=request.resources.memory,
            exit_code=outcome.exit_code,
        )
        publisher = self._plugins.publishers.get(task.publisher.type)
        verified = bool(verification(job))
        if outcome.stdout is None or publisher.reads_results or verified or self._tamper_results:
            write_results(results_dir, outcome)
        if self._tamper_results:
            with (results_dir / "stdout").open("a") as stdout_file:
                stdout_file.write(f"tampered by {self._node_id}\n")
            outcome = dataclasses.replace(outcome, stdout=None)
        hashed = result_hash(results_dir) if verified else ""
        published = publisher.publish(task.publisher, job.id, execution.id, results_dir)
        limit = self._output_limit_bytes
        stdout, stdout_cut = output_text(outcome.stdout, results_dir / "stdout", limit)
        stderr, stderr_cut = output_text(outcome.stderr, results_dir / "stderr", limit)
        log.info(
            "event=execution_done execution=%s exit_code=%d error=%r",
            execution.id,
            outcome.exit_code,
            outcome.error,
        )
        return RunResult(
            execution_id=execution.id,
            job_id=job.id,
            result_hash=hashed,
            published_result=published,
            run_output=RunCommandResult(
                stdout=stdout,
                stdout_truncated=stdout_cut,
                stderr=stderr,
                stderr_truncated=stderr_cut,
                exit_code=outcome.exit_code,
                error_msg=outcome.error,
            ),
        )

    def _stage(
        self, execution_id: str, sources: list[InputSource], staging_dir: Path, timeout_s: float
    ) -> list[Mount]:
        """Stage every input within ``timeout_s``; raises ExecutionError when the deadline
        passes or a cancel comes first (whatever the provider raised on the way)."""
        with self._staging.track(execution_id, timeout_s) as control:
            mounts = []
            try:
                for index, source in enumerate(sources):
                    if control.reason is not None:
                        break
                    mounts.append(self._stage_one(source, staging_dir / str(index), control))
            except Exception:
                if control.reason is None:
                    raise
            if control.reason is not None:
                raise _stopped_staging(control)
            self._staged.add(execution_id)
            return mounts

    def _stage_one(self, source: InputSource, folder: Path, control: RunControl) -> Mount:
        provider = self._plugins.storage.get(source.source.type)
        folder.mkdir(parents=True)
        if isinstance(provider, InterruptibleStorage):
            return provider.prepare_interruptible(source, folder, control)
        return provider.prepare(source, folder)


def _stopped_staging(control: RunControl) -> ExecutionError:
    if control.reason is StopReason.TIMEOUT:
        problem = f"inputs not staged within the execution timeout of {control.timeout_s:g}s"
    else:
        problem = "cancelled while staging inputs"
    log.info("event=staging_stopped execution=%s reason=%s", control.execution_id, control.reason)
    return ExecutionError(problem)
