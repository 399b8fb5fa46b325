"""Bid accept probes: ``--bid-accept-probe-http URL`` / ``--bid-accept-probe-exec CMD`` let
the requester's operator veto a bid.

Each probe is asked about a positive bid with ``{"Job": <the job>, "NodeID": <the bidder>,
"Node": <its NodeInfo>}`` and answers as protocol/probes.py says, with ``Accept`` as the key
of a JSON answer (``{"Accept": false, "Reason": "..."}``) and
``BACALHAU_BID_ACCEPT_PROBE_DATA`` for a program. The bid is accepted once every probe said
yes for its (job, node); the first no rejects it with the probe's reason, and the job is
never asked of that node again (:class:`requester.selection.vetoes.VetoRanker`).

Probes block, so they run on a small pool, never on the orchestrator thread: a bid they have
not answered yet waits (its node keeps its reservation), and once they have, the job is
evaluated again. With probes configured every bid waits for approval (no direct placement:
a run must not start before its bid was seen). Answers are kept per (job, node), a bounded
number, so a job evaluated again does not ask again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from protocol.bounded import LRUCache
from protocol.execution import Execution
from protocol.job import Job, JobStateType
from protocol.node import NodeInfo
from protocol.probes import DEFAULT_TIMEOUT_S, YES, ExecProbe, HTTPProbe, Probe, ProbeAnswer
from requester.plan import Plan

log = logging.getLogger("bacalao.requester")

PROBE_DATA_ENV = "BACALHAU_BID_ACCEPT_PROBE_DATA"
ANSWER_KEY = "Accept"
WHAT = "bid accept probe"
DEFAULT_WORKERS = 4
KEPT_ANSWERS = 10_000

_Key = tuple[str, str]  # (job ID, node ID)


@dataclass(frozen=True)
class AcceptProbeConfig:
    """``--bid-accept-probe-http/-exec/-timeout``: "" is none."""

    http: str = ""
    exec: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S


def probes_of(config: AcceptProbeConfig) -> list[Probe]:
    """The probes a requester was configured with: the HTTP one first, then the program."""
    probes: list[Probe] = []
    if config.http:
        probes.append(HTTPProbe(config.http, WHAT, ANSWER_KEY, config.timeout_s))
    if config.exec:
        probes.append(ExecProbe(config.exec, WHAT, PROBE_DATA_ENV, config.timeout_s))
    return probes


def ask_all(probes: Sequence[Probe], job: Job, node_id: str, node: NodeInfo | None) -> ProbeAnswer:
    """Every probe in turn, until one says no."""
    payload = {
        "Job": job.to_wire(),
        "NodeID": node_id,
        "Node": None if node is None else node.to_wire(),
    }
    for probe in probes:
        answer = probe.ask(payload)
        if not answer.yes:
            return answer
    return YES


class AcceptProbes:
    """The configured probes, their answers, and the pool that asks them. ``wake(job_id)``
    asks for the job to be evaluated again: when an answer about it came in (on a pool
    thread), and when a bid was vetoed (in :meth:`review`)."""

    def __init__(
        self,
        probes: Sequence[Probe],
        wake: Callable[[str], None],
        workers: int = DEFAULT_WORKERS,
        kept: int = KEPT_ANSWERS,
    ) -> None:
        self._probes = tuple(probes)
        self._wake = wake
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="accept-probe")
        self._lock = threading.Lock()
        self._answers: LRUCache[_Key, ProbeAnswer] = LRUCache(kept)
        self._vetoes: dict[str, dict[str, str]] = {}  # job -> node -> why (kept with answers)
        self._asking: set[_Key] = set()
        self.asked = 0

    def vetoes(self, job_id: str) -> Mapping[str, str]:
        """The nodes a probe said no to for ``job_id``, and why."""
        with self._lock:
            return dict(self._vetoes.get(job_id, {}))

    def review(
        self, job: Job, plan: Plan, executions: Sequence[Execution], nodes: Sequence[NodeInfo]
    ) -> None:
        """Keep in ``plan.accept`` only the bids every probe said yes to; reject those one
        said no to; ask about the others (they wait, and the job is looked at again)."""
        if not plan.accept:
            return
        by_id = {execution.id: execution for execution in executions}
        infos = {node.node_id: node for node in nodes}
        accepted: list[str] = []
        vetoed = False
        for execution_id in plan.accept:
            node_id = by_id[execution_id].node_id
            answer = self._answer(job, node_id, infos.get(node_id))
            if answer is None:
                continue
            if answer.yes:
                accepted.append(execution_id)
            else:
                plan.reject.append((execution_id, f"bid vetoed: {answer.reason}"))
                vetoed = True
        plan.accept = accepted
        if vetoed:  # the plan counted the vetoed bid: look again, to ask another node
            self._wake(job.id)
        starting = accepted or any(e.state.active for e in executions)
        if not starting and plan.job_state == JobStateType.RUNNING:
            plan.job_state = None  # nothing runs yet: the job stays as it is

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for probe in self._probes:
            probe.close()

    def _answer(self, job: Job, node_id: str, node: NodeInfo | None) -> ProbeAnswer | None:
        key = (job.id, node_id)
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None or key in self._asking:
                return answer
            self._asking.add(key)
            self.asked += 1
        self._pool.submit(self._ask, key, job, node)
        return None

    def _ask(self, key: _Key, job: Job, node: NodeInfo | None) -> None:
        try:
            answer = ask_all(self._probes, job, key[1], node)
        except Exception as exc:  # a probe's own bug: no answer is a no
            log.exception("event=accept_probe_failed job=%s node=%s", *key)
            answer = ProbeAnswer(False, f"{WHAT} failed: {type(exc).__name__}: {exc}")
        log.info(
            "event=bid_reviewed job=%s node=%s accepted=%s reason=%r",
            key[0], key[1], answer.yes, answer.reason,
        )  # fmt: skip
        with self._lock:
            self._answers.put(key, answer)
            self._asking.discard(key)
            if not answer.yes:
                self._vetoes.setdefault(key[0], {})[key[1]] = answer.reason
                if len(self._vetoes) > len(self._answers):  # bounded as the answers are
                    self._vetoes.pop(next(iter(self._vetoes)))
        self._wake(key[0])
