"""Operator probes: an operator's HTTP service or program answers yes or no about a job.

Both sides ask them, as in Bacalhau: a compute node whether to bid
(``--job-selection-probe-http/-exec``), a requester whether to accept a bid
(``--bid-accept-probe-http/-exec``). This module is the probe protocol itself, the same for
both; each side builds its payload and turns the answer into its own decision.

HTTP: the payload is POSTed as JSON. A status other than 2xx says no (redirects are not
followed); a JSON answer ``{<answer key>: bool, "Reason": str}`` (keys in any case) decides;
any other 2xx says yes. Exec: CMD runs through ``sh -c`` with the payload as JSON on its stdin
and in an environment variable (left out over 64 KiB, which no environment takes); exit status
0 says yes, any other no, with the last line of its stderr as the reason. Either has
``timeout_s`` (a program is then killed with its process group). A probe that cannot answer
(timeout, connection error, a program that cannot start) says no, saying why: it never lets
a job through. Probes block: call them from a worker thread, never from a bus thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

DEFAULT_TIMEOUT_S = 10.0
MAX_OUTPUT_BYTES = 64 * 1024
MAX_ENV_BYTES = 64 * 1024  # beyond this the variable is left out (exec would fail): use stdin


@dataclass(frozen=True)
class ProbeAnswer:
    yes: bool
    reason: str = ""


YES = ProbeAnswer(True)


def no(reason: str) -> ProbeAnswer:
    return ProbeAnswer(False, reason)


class Probe(Protocol):
    """One operator probe. ``who`` names it in reasons ("job selection probe <url>")."""

    who: str

    def ask(self, payload: dict[str, Any]) -> ProbeAnswer: ...

    def close(self) -> None: ...


def read_answer(body: Any, who: str, key: str) -> ProbeAnswer | None:
    """``{<key>: bool, "Reason": str}`` (keys in any case) as an answer; None when ``body`` is
    not such an answer."""
    if not isinstance(body, dict):
        return None
    lowered = {str(name).lower(): value for name, value in body.items()}
    if key.lower() not in lowered:
        return None
    said = lowered[key.lower()]
    if not isinstance(said, bool):  # "false" as a string must not read as a yes
        return no(f"{who} answered {key}={said!r}, not true or false")
    reason = str(lowered.get("reason") or "")
    if said:
        return ProbeAnswer(True, reason)
    return no(f"{who} said no: {reason}" if reason else f"{who} said no")


class HTTPProbe:
    def __init__(
        self,
        url: str,
        what: str,
        answer_key: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.who = f"{what} {url}"
        self._key = answer_key
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    def ask(self, payload: dict[str, Any]) -> ProbeAnswer:
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TimeoutException:
            return no(f"{self.who} did not answer in time")
        except httpx.HTTPError as exc:
            return no(f"{self.who} failed: {type(exc).__name__}: {exc}")
        if not response.is_success:  # 3xx too: a redirect is no answer
            return no(f"{self.who} answered {response.status_code} {response.reason_phrase}")
        try:
            body = response.json()
        except ValueError:
            return YES
        return read_answer(body, self.who, self._key) or YES

    def close(self) -> None:
        self._client.close()


class ExecProbe:
    def __init__(
        self, command: str, what: str, data_env: str, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.command = command
        self.who = f"{what} `{command}`"
        self._data_env = data_env
        self._timeout_s = timeout_s

    def ask(self, payload: dict[str, Any]) -> ProbeAnswer:
        data = json.dumps(payload)
        env = dict(os.environ)
        if len(data) <= MAX_ENV_BYTES:
            env[self._data_env] = data
        try:
            probe = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            return no(f"{self.who} could not run: {exc}")
        with probe:
            try:
                _, stderr = probe.communicate(data.encode(), timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(probe.pid, signal.SIGKILL)
                # a descendant that left the group may still hold stderr: do not wait on it
                with contextlib.suppress(subprocess.TimeoutExpired):
                    probe.communicate(timeout=1.0)
                return no(f"{self.who} did not finish within {self._timeout_s:g}s (killed)")
        if probe.returncode == 0:
            return YES
        lines = stderr[-MAX_OUTPUT_BYTES:].decode("utf-8", "replace").strip().splitlines()
        if probe.returncode < 0:  # it crashed, or something killed it: not an answer
            return no(f"{self.who} {_killed_by(-probe.returncode)}")
        why = lines[-1].strip() if lines else f"exit status {probe.returncode}"
        return no(f"{self.who} said no: {why}")

    def close(self) -> None:
        return None


def _killed_by(number: int) -> str:
    """``was killed by SIGSEGV (signal 11)``, or the bare number for a signal Python does not
    name."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"was killed by signal {number}"
    return f"was killed by {name} (signal {number})"
