"""A compute node: bids on its own terms, reserves capacity per bid, runs what it wins.

Capacity is enforced here, not on the requester: a positive bid reserves the job's resources
until BidAccepted (the reservation becomes an allocation), BidRejected, or the reservation
timeout; so however stale a requester's view, and however many requesters compete, the node
never takes more than it has. What a job needs is the node's own figure (the task's Resources
with the node's defaults, never less than the requester's AllocatedResources).

Messages may come twice (a broker redelivers) or late: a second AskForBid or BidAccepted for
an execution the node holds or ran is ignored, and a BidAccepted after the bid's reservation
expired is refused with a retryable ComputeError (the bid is void from then on, whether or not
the sweeper has run yet), so every run the node starts is one it reports holding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from compute.bidding.base import BidRule
from compute.bidding.chain import blocking_rules, decide, default_rules, may_block
from compute.bidding.selection import selection_rules
from compute.capacity import CapacityTracker, execution_needs
from compute.config import ComputeConfig, Outbox
from compute.description import Description
from compute.logs import LogServer, LogSource
from compute.runner import ActivityLog, Plugins, Runner
from compute.slots import ANY_REQUESTER, HOLDS_CAPACITY, Slot, Slots, SlotState
from protocol.envelope import Envelope
from protocol.errors import TransportError
from protocol.execution import Execution
from protocol.messages import (
    AdoptExecution,
    AdoptionRefused,
    AskForBid,
    BidAccepted,
    BidRejected,
    BidResult,
    CancelExecution,
    ComputeError,
    ExecutionLogsRequest,
    ExecutionStarted,
    Message,
    RunResult,
)
from protocol.node import NodeInfo, NodeType

log = logging.getLogger("bacalao.compute")

CAPACITY = "capacity"  # what refuses an ask the rules allow, when the node lacks the room


# A run started on a direct ask says so after this long, unless its RunResult (which tells
# the requester it started, too) is ready first: a short run costs one message, not two.
STARTED_HOLD_S = 0.05


class ComputeNode:
    def __init__(
        self,
        node_id: str,
        config: ComputeConfig,
        plugins: Plugins,
        outbox: Outbox,
        work_dir: Path,
        rules: list[BidRule] | None = None,
        node_type: NodeType = NodeType.COMPUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self._config = config
        self._plugins = plugins
        self._outbox = outbox
        if rules is None:
            rules = default_rules(plugins.storage, config.data_locality)
            rules += selection_rules(config.job_selection, node_id)
        self._rules = rules
        self._blocking = blocking_rules(rules)
        self._clock = clock
        self.capacity = CapacityTracker(config.max_capacity, clock=clock)
        self._description = Description(node_id, node_type, config, plugins)
        work_dir.mkdir(parents=True, exist_ok=True)
        self._runner = Runner(
            node_id,
            plugins,
            work_dir / "executions",
            default_timeout_s=config.default_execution_timeout_s,
            activity=ActivityLog(work_dir / "activity.jsonl"),
            tamper_results=config.tamper_results,
        )
        self._slots = Slots()  # every execution this node was asked about, by state
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(config.max_parallel_runs, thread_name_prefix="run")
        # Bidding may ask storage about inputs (sizes, locality) over the network, or run a
        # probe: such asks are decided off the bus thread, so a slow endpoint cannot hold up
        # accepts, cancels and rejections (see ``may_block``).
        self._bidders = ThreadPoolExecutor(config.bid_workers, thread_name_prefix="bid")
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        self.counts: Counter[str] = Counter()  # bids by outcome, for /metrics
        self.refusals: Counter[str] = Counter()  # refused asks by what refused them
        # Serves each run's stdout and stderr to its requester while it runs (compute/logs.py).
        self.logs = LogServer(self, outbox, config.logs)

    # -- info ----------------------------------------------------------------------------

    def on_run_ended(self, listener: Callable[[str, int, float], None]) -> None:
        """Call ``listener(engine, exit_code, seconds)`` as each executor run ends."""
        self._runner.on_run_ended(listener)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called whenever the node's capacity changes (gossip announces it)."""
        self._listeners.append(listener)

    def info(self) -> NodeInfo:
        return self.described()[0]

    def described(self) -> tuple[NodeInfo, list[str]]:
        """This node's NodeInfo, and the executions (reserved or running) its
        AvailableCapacity left out, from one snapshot: a requester tells its own placements
        apart by them."""
        return self._description.described(self.capacity.snapshot())

    def holding(self) -> list[str]:
        """Executions this node holds (reserved or running), plus runs finished in the last
        ``finished_memory_s``: their result may still be on its way, so a heartbeat must not
        yet disown them."""
        with self._lock:
            self._prune()
            return self._slots.listed()

    def log_source(self, execution_id: str) -> LogSource | None:
        """Whose ``execution_id`` is, where its run writes its output, whether it ended (for
        :class:`LogServer`); None when the node does not hold it."""
        with self._lock:
            slot = self._slots.get(execution_id)
            if slot is None or slot.state is SlotState.WITHDRAWN:
                return None
            ended = slot.state is SlotState.FINISHED
            requester = slot.requester
        return LogSource(requester, self._runner.results_dir(execution_id), ended)

    def _prune(self) -> None:
        """Forget executions finished, or asks withdrawn, longer ago than
        ``finished_memory_s`` (lock held)."""
        self._slots.prune(self._clock() - self._config.finished_memory_s)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = threading.Thread(target=self._sweep, name="reservations", daemon=True)
        self._sweeper.start()
        self.logs.start()

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            running = [slot.held for slot in self._slots.holding_capacity() if slot.running]
        for execution in running:
            self._runner.cancel(execution)
        self._bidders.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.logs.close()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self._runner.close()

    def _sweep(self) -> None:
        while not self._stopping.wait(1.0):
            self.expire_reservations()

    def expire_reservations(self) -> list[str]:
        """Drop the bids whose reservation timed out (the sweeper calls this every second).

        One step under the node's lock, so a BidAccepted is decided wholly before or wholly
        after it: never half-way, where it would run an execution the node no longer lists.
        """
        with self._lock:
            self._prune()
            expired = self.capacity.expire()
            for execution_id in expired:
                self._forget(execution_id)
        if expired:
            log.info("event=reservations_expired executions=%s", ",".join(expired))
            self._changed()
        return expired

    # -- messages ------------------------------------------------------------------------

    def handle(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if isinstance(payload, AskForBid):
            if payload.execution.node_id != self.node_id:
                # an ask for another node's execution: running it here would do that
                # node's work under this node's name, and its results would be refused
                log.warning(
                    "event=ask_dropped execution=%s requester=%s reason='execution is for %s'",
                    payload.execution.id,
                    envelope.sender,
                    payload.execution.node_id,
                )
            elif self._stopping.is_set():
                return
            elif payload.execution.job is not None and may_block(
                self._blocking, payload.execution.job
            ):
                self._bidders.submit(
                    self._on_ask_safely,
                    envelope.sender,
                    payload.execution,
                    payload.wait_for_approval,
                )
            else:  # nothing to wait for: decided here, without a hop to a bid worker
                self._on_ask_safely(envelope.sender, payload.execution, payload.wait_for_approval)
        elif isinstance(payload, BidAccepted):
            self._on_accepted(envelope.sender, payload.execution_id)
        elif isinstance(payload, BidRejected):
            reason = f"bid rejected: {payload.reason}"
            self._on_cancel(payload.execution_id, reason, envelope.sender)
        elif isinstance(payload, CancelExecution):
            self._on_cancel(payload.execution_id, f"cancelled: {payload.reason}", envelope.sender)
        elif isinstance(payload, AdoptExecution):
            self._on_adopt(envelope.sender, payload)
        elif isinstance(payload, ExecutionLogsRequest):
            self.logs.handle(envelope.sender, payload)

    def _reply(self, requester: str, message: Message) -> None:
        try:
            self._outbox.send(requester, message)
        except TransportError as exc:
            log.warning("event=reply_failed requester=%s error=%r", requester, str(exc))

    def _on_ask_safely(
        self, requester: str, execution: Execution, wait_for_approval: bool = True
    ) -> None:
        try:
            self._on_ask(requester, execution, wait_for_approval)
        except Exception:
            log.exception("event=bid_failed execution=%s", execution.id)

    def _on_ask(self, requester: str, execution: Execution, wait_for_approval: bool = True) -> None:
        """Decide a bid. Without ``wait_for_approval`` (the requester placed the execution
        here, knowing this node had room) a positive bid starts the run at once, in the same
        locked step as the reservation: no slot waits for an accept, and the answer is
        ExecutionStarted instead of a BidResult."""
        job = execution.job
        if job is None:
            return
        try:
            asked = job.task.resources.parsed()
        except ValueError as exc:  # a job stored before today's bounds existed
            unusable = BidResult(
                execution_id=execution.id,
                job_id=job.id,
                accepted=False,
                reason=f"Resources: {exc}",
                refused_by="resources",
            )
            self.refusals["resources"] += 1
            self._reply(requester, unusable)
            return
        needs = execution_needs(asked, execution.resources(), self._config.default_job_resources)
        decision = decide(self._description.bid_request(job, needs), self._rules)
        busy = False
        reason = decision.reason
        reserved = False
        run: Slot | None = None
        with self._lock:  # one step with _on_cancel: a withdrawal lands before or after it
            now_s = self._clock()
            slot = self._slots.get(execution.id)
            if slot is not None and slot.state is SlotState.WITHDRAWN:
                self._slots.move(execution.id, None, now_s)
                if slot.requester in (requester, ANY_REQUESTER):
                    log.debug("event=bid_dropped execution=%s reason='ask withdrawn'", execution.id)
                    return
                slot = None  # withdrawn by another node, which had no say
            if slot is not None:
                log.debug("event=bid_dropped execution=%s reason='asked again'", execution.id)
                return
            if decision.should_bid:
                ttl_s = self._config.reservation_ttl_s
                refusal = self.capacity.try_reserve(execution.id, needs, ttl_s)
                if refusal is None:
                    slot = self._slots.reserve(execution, requester, needs, now_s)
                    reserved = True
                    if not wait_for_approval and self.capacity.commit(execution.id):
                        self._slots.move(execution.id, SlotState.RUNNING, now_s)
                        run = slot
                else:
                    busy, reason = True, refusal
        accepted = decision.should_bid and not busy
        self.counts["bid_busy" if busy else "bid_accepted" if accepted else "bid_refused"] += 1
        refused_by = "" if accepted else CAPACITY if busy else decision.rule
        if refused_by:
            self.refusals[refused_by] += 1
        log.debug(
            "event=bid execution=%s job=%s accepted=%s started=%s reason=%r",
            execution.id,
            job.id,
            accepted,
            run is not None,
            reason,
        )
        if run is not None:
            # Asked to start at once, and started: ExecutionStarted is the whole answer (a
            # BidResult too would cost both sides a message for nothing they do not know),
            # held a moment in case the RunResult can say it instead.
            started = ExecutionStarted(execution_id=execution.id, job_id=job.id)
            self._outbox.hold(requester, started, execution.id, STARTED_HOLD_S)
            self._pool.submit(self._run, run, False)
        else:
            self._reply(
                requester,
                BidResult(
                    execution_id=execution.id,
                    job_id=job.id,
                    accepted=accepted,
                    reason=reason,
                    busy=busy,
                    refused_by=refused_by,
                ),
            )
        if reserved:
            self._changed()

    def _on_accepted(self, requester: str, execution_id: str) -> None:
        with self._lock:  # one step, as the sweep and a cancel are: no half-way states
            slot = self._slots.get(execution_id)
            held = slot if slot is not None and slot.state in HOLDS_CAPACITY else None
            if held is not None and held.requester != requester:
                _not_its_requester("BidAccepted", execution_id, requester, held.requester)
                return
            if slot is not None and slot.state in (SlotState.RUNNING, SlotState.FINISHED):
                log.info("event=accept_ignored execution=%s reason='ran already'", execution_id)
                return
            if held is not None and self.capacity.commit(execution_id):
                self._slots.move(execution_id, SlotState.RUNNING, self._clock())
                self._pool.submit(self._run, held)
                return
            if held is None:
                refusal = "no bid of this node is open for it (expired, rejected or cancelled)"
            else:
                refusal = f"the bid's reservation expired after {self._config.reservation_ttl_s:g}s"
                self._forget(execution_id)
        self._release(execution_id, f"cannot start: {refusal}")
        self._reply(
            requester,
            ComputeError(
                execution_id=execution_id,
                job_id=held.held.job_id if held else "",
                message=f"cannot start: {refusal}",
                retryable=True,
            ),
        )

    def _run(self, held: Slot, announce: bool = True) -> None:
        """Run ``held``; ``announce``: send ExecutionStarted once its inputs are staged (a
        run started on a direct ask has said so already)."""
        execution = held.held

        def started() -> None:
            if announce:
                self._reply(
                    held.requester,
                    ExecutionStarted(execution_id=execution.id, job_id=execution.job_id),
                )

        try:
            try:
                result = self._runner.run(execution, started, held.needs)
            finally:
                self._release(execution.id, "finished")
            if self._stopping.is_set():
                result = ComputeError(
                    execution_id=execution.id,
                    job_id=execution.job_id,
                    message=f"node {self.node_id} shut down during the run",
                    retryable=True,
                )
            # A RunResult tells the requester the run started too; anything else goes after
            # the ExecutionStarted a direct ask's run may still hold.
            if not (isinstance(result, RunResult) and self._outbox.drop(execution.id)):
                self._outbox.release(execution.id)
            with self._lock:  # one step with an adoption: it resends this, or this goes to it
                held.reply = result
                requester = held.requester
            self._reply(requester, result)
        finally:
            # after the reply: what is published no longer needs the working files
            self._runner.clean(execution.id)

    def _on_adopt(self, sender: str, adopt: AdoptExecution) -> None:
        """Another requester took the execution's job over: its replies (the run's result,
        its logs) go to that one from now on, and it hears where the run stands. Any admitted
        node may ask this, as any may ask for a bid; an execution this node does not run, or
        whose bid was never accepted, is not adopted (its new owner asks again)."""
        answer: Message | None
        release = False
        with self._lock:
            slot = self._slots.get(adopt.execution_id)
            if slot is None or slot.state not in (SlotState.RUNNING, SlotState.FINISHED):
                # Its new owner fails it and asks again, so it must not start here later: a
                # bid waiting for an accept lets its room go, and an ask not decided yet (a
                # bid worker has it) or not arrived is dropped when it is, whoever asked.
                if slot is None:
                    self._slots.withdraw(adopt.execution_id, ANY_REQUESTER, self._clock())
                elif slot.state is SlotState.RESERVED:
                    self._forget(adopt.execution_id)
                    release = True
                answer = AdoptionRefused(
                    execution_id=adopt.execution_id,
                    job_id=adopt.job_id,
                    reason=f"node {self.node_id} does not run execution {adopt.execution_id}",
                )
            else:
                before, slot.requester = slot.requester, sender
                answer = slot.reply  # None while running, or while the result is on its way
                if slot.running:
                    answer = ExecutionStarted(
                        execution_id=adopt.execution_id, job_id=slot.held.job_id
                    )
                log.info(
                    "event=execution_adopted execution=%s from=%s to=%s",
                    adopt.execution_id,
                    before,
                    sender,
                )
        if release:
            self._release(adopt.execution_id, f"its job was taken over by {sender}")
        if answer is not None:
            self._reply(sender, answer)

    def _on_cancel(self, execution_id: str, reason: str, sender: str) -> None:
        """Cancel (or reject) an execution: withdraw an ask still being decided, free a bid's
        reservation, stop a run. Decided under the lock, as BidAccepted is. Only the
        requester that asked may: another node's word about it is ignored."""
        with self._lock:
            held = self._slots.get(execution_id)
            if held is None or held.state is SlotState.WITHDRAWN:
                # not decided yet (or withdrawn already: the latest word stands)
                if held is not None:
                    self._slots.move(execution_id, None, self._clock())
                self._slots.withdraw(execution_id, sender, self._clock())
                return
            if held.state is SlotState.FINISHED:
                return
            if held.requester != sender:
                _not_its_requester("a cancel", execution_id, sender, held.requester)
                return
            running = held.running
            if not running:
                self._forget(execution_id)
        if running:
            log.info("event=cancel execution=%s reason=%r", execution_id, reason)
            self._runner.cancel(held.held)
        else:
            self._release(execution_id, reason)

    def _forget(self, execution_id: str) -> None:
        """Release the slot (caller holds the lock): a bid is forgotten, a run is remembered
        as Finished for ``holding``."""
        state = self._slots.state(execution_id)
        if state is SlotState.RESERVED:
            self._slots.move(execution_id, None, self._clock())
        elif state is SlotState.RUNNING:
            self._slots.move(execution_id, SlotState.FINISHED, self._clock())

    def _release(self, execution_id: str, why: str) -> None:
        with self._lock:
            self._forget(execution_id)
        if self.capacity.release(execution_id):
            log.debug("event=capacity_released execution=%s why=%r", execution_id, why)
            self._changed()


def _not_its_requester(what: str, execution_id: str, sender: str, requester: str) -> None:
    log.warning(
        "event=message_from_wrong_node what=%r execution=%s sender=%s requester=%s",
        what,
        execution_id,
        sender,
        requester,
    )
