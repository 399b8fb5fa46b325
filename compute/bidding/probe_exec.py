"""``--job-selection-probe-exec CMD``: the operator's program decides, as in Bacalhau.

CMD runs through ``sh -c`` with ``{"Job": <the job>, "NodeID": <this node>}`` as JSON on its
stdin and in ``BACALHAU_JOB_SELECTION_PROBE_DATA`` (left out for a job over 64 KiB of JSON,
which no environment takes: stdin always has it). Exit status 0 bids; any other refuses,
with the last line of its stderr as the reason. It has ``timeout_s`` to finish, after which
it is killed and the job refused. Runs on a bid worker, never on the bus thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from protocol.job import Job

DEFAULT_TIMEOUT_S = 10.0
PROBE_DATA_ENV = "BACALHAU_JOB_SELECTION_PROBE_DATA"
MAX_OUTPUT_BYTES = 64 * 1024


MAX_ENV_BYTES = 64 * 1024  # beyond this the variable is left out (exec would fail): use stdin


def _environment(data: str) -> dict[str, str]:
    if len(data) > MAX_ENV_BYTES:
        return dict(os.environ)
    return {**os.environ, PROBE_DATA_ENV: data}


class ExecProbeRule:
    name = "job-selection-probe-exec"

    def __init__(self, command: str, node_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.command = command
        self._node_id = node_id
        self._timeout_s = timeout_s

    def may_block(self, job: Job) -> bool:
        return True  # a command of the operator's, run for every job

    def check(self, request: BidRequest) -> BidDecision:
        who = f"job selection probe `{self.command}`"
        data = json.dumps({"Job": request.job.to_wire(), "NodeID": self._node_id})
        try:
            probe = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=_environment(data),
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            return refuse(f"{who} could not run: {exc}")
        with probe:
            try:
                _, stderr = probe.communicate(data.encode(), timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(probe.pid, signal.SIGKILL)
                # a descendant that left the group may still hold stderr: do not wait on it
                with contextlib.suppress(subprocess.TimeoutExpired):
                    probe.communicate(timeout=1.0)
                return refuse(f"{who} did not finish within {self._timeout_s:g}s (killed)")
        if probe.returncode == 0:
            return YES
        lines = stderr[-MAX_OUTPUT_BYTES:].decode("utf-8", "replace").strip().splitlines()
        why = lines[-1].strip() if lines else f"exit status {probe.returncode}"
        return refuse(f"{who} said no: {why}")
