"""Messages from compute nodes about the executions they were asked for (bids, starts,
results, errors), recorded in the job store as compare-and-set changes: a message that is
stale by the time it is handled (its execution moved on) changes nothing, and only the node
an execution was given to may speak for it. Each handler returns the job to evaluate again.
Runs on the orchestrator's worker thread, inside its pass's store batch.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping

from protocol.bookkeeping import Verdict
from protocol.envelope import Envelope
from protocol.errors import NotFoundError, StateTransitionError
from protocol.execution import Execution
from protocol.messages import (
    AdoptionRefused,
    BidRejected,
    BidResult,
    CancelExecution,
    ComputeError,
    ExecutionStarted,
    RunResult,
)
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from protocol.verification import RESULT_HASH
from requester.plan import is_direct
from requester.store import JobStore

log = logging.getLogger("bacalao.requester")

# A refusal's RefusedBy is another node's free text: counted under at most this many names
# (the compute node's rule names, a dozen), the rest as "other", so /metrics stays bounded.
MAX_REFUSAL_LABELS = 32
_REFUSAL_LABEL = re.compile(r"[a-z][a-z0-9 _-]{0,39}")


class Replies:
    """``send`` carries a message to a node once the pass's changes commit; ``counts`` and
    ``refusals`` are the orchestrator's counters (bids by outcome, refusals by rule)."""

    def __init__(
        self,
        store: JobStore,
        send: Callable[[str, BidRejected | CancelExecution], None],
        counts: Counter[str],
        refusals: Counter[str],
    ) -> None:
        self._store = store
        self._send = send
        self.counts = counts
        self.refusals = refusals

    def handle(self, envelope: Envelope) -> str | None:
        """Record what the message says; the ID of the job to evaluate again (None: nothing
        changed that the job's plan depends on)."""
        payload = envelope.payload
        try:
            execution = self._of_its_node(envelope)
            if execution is None:
                return None
            if isinstance(payload, BidResult):
                return self._on_bid(envelope.sender, payload, execution)
            if isinstance(payload, ExecutionStarted):
                return self._on_started(envelope.sender, payload, execution)
            if isinstance(payload, RunResult):
                return self._on_run_result(envelope.sender, payload, execution)
            if isinstance(payload, AdoptionRefused):
                return self._on_not_adopted(envelope.sender, payload, execution)
            if isinstance(payload, ComputeError):
                failed = self._store.update_execution(
                    payload.execution_id,
                    state=S.FAILED,
                    desired=D.STOPPED,
                    message=payload.message,
                    # a direct ask's node answers an adoption before it heard of the start
                    expect=(S.BID_ACCEPTED, S.RUNNING, S.PUBLISHING)
                    + ((S.ASK_FOR_BID,) if is_direct(execution) else ()),
                    verdict=Verdict(retryable=payload.retryable),
                )
                return failed.job_id
        except (StateTransitionError, NotFoundError) as exc:
            log.debug(
                "event=stale_message type=%s sender=%s reason=%r",
                envelope.type,
                envelope.sender,
                str(exc),
            )
            return None
        log.warning("event=unexpected_message type=%s sender=%s", envelope.type, envelope.sender)
        return None

    def _on_not_adopted(
        self, sender: str, refused: AdoptionRefused, execution: Execution
    ) -> str | None:
        """The node does not run an execution this requester adopted with a job it took
        over: cancelled, not held against the node (it never had it) nor counted as an
        attempt; the job asks again."""
        if execution.state.terminal:
            return None
        cancelled = self._store.update_execution(
            refused.execution_id,
            state=S.CANCELLED,
            desired=D.STOPPED,
            message=f"{sender} does not run it ({refused.reason}): asked again",
            expect=(execution.state,),
        )
        return cancelled.job_id

    def _of_its_node(self, envelope: Envelope) -> Execution | None:
        """The execution the message is about, if its sender is the node it was given to:
        only that node may speak for it."""
        execution_id = getattr(envelope.payload, "execution_id", None)
        if not isinstance(execution_id, str):
            log.warning(
                "event=unexpected_message type=%s sender=%s", envelope.type, envelope.sender
            )
            return None
        execution = self._store.get_execution(execution_id)
        if execution.node_id == envelope.sender:
            return execution
        log.warning(
            "event=message_from_wrong_node type=%s execution=%s sender=%s owner=%s",
            envelope.type,
            execution_id,
            envelope.sender,
            execution.node_id,
        )
        return None

    def _on_bid(self, sender: str, bid: BidResult, execution: Execution) -> str | None:
        if execution.state != S.ASK_FOR_BID:
            # A bid for an execution that ended (its ask timed out, say) frees the node's
            # reservation; a repeated bid for a live one is a duplicate and changes nothing.
            if bid.accepted and execution.state.terminal:
                reason = f"execution is {execution.state.label}"
                self._send(
                    sender,
                    BidRejected(execution_id=bid.execution_id, job_id=bid.job_id, reason=reason),
                )
            return None
        outcome = "busy" if bid.busy else "accepted" if bid.accepted else "rejected"
        self.counts[f"bid_{outcome}"] += 1
        if not bid.accepted:
            self.refusals[refusal_label(bid.refused_by, self.refusals)] += 1
        # Placed directly (no approval round), a positive bid means the run has started.
        state = S.ASK_FOR_BID_ACCEPTED if bid.accepted else S.ASK_FOR_BID_REJECTED
        if bid.accepted and is_direct(execution):
            state = S.BID_ACCEPTED
        updated = self._store.update_execution(
            bid.execution_id,
            state=state,
            message=bid.reason or ("bid received" if bid.accepted else "bid refused"),
            expect=(S.ASK_FOR_BID,),
            verdict=Verdict(busy=True) if bid.busy else None,
        )
        return updated.job_id

    def _on_started(
        self, sender: str, started: ExecutionStarted, execution: Execution
    ) -> str | None:
        """A run started: after its accept, or as a node's whole answer to a direct ask."""
        if execution.state.terminal:
            # it ended here (its ask timed out, the job was stopped) but runs there: stop it
            reason = f"execution is {execution.state.label}"
            self._send(
                sender,
                CancelExecution(
                    execution_id=started.execution_id, job_id=started.job_id, reason=reason
                ),
            )
            return None
        if is_direct(execution):
            updated = self._store.update_execution(
                started.execution_id, state=S.RUNNING, message="started", expect=(S.ASK_FOR_BID,)
            )
            self.counts["bid_accepted"] += 1  # the node's answer to a direct ask
            return updated.job_id  # the job runs now
        self._store.update_execution(
            started.execution_id, state=S.RUNNING, expect=(S.BID_ACCEPTED,)
        )
        return None

    def _on_run_result(self, sender: str, result: RunResult, execution: Execution) -> str | None:
        """A run ended. A short run on a direct ask reports only this (its ExecutionStarted
        was dropped as redundant): the start is recorded first, so the history has both."""
        if execution.state == S.ASK_FOR_BID and is_direct(execution):
            started = ExecutionStarted(execution_id=result.execution_id, job_id=result.job_id)
            if self._on_started(sender, started, execution) is None:
                return None
        output = result.run_output
        failed = output.exit_code != 0 or bool(output.error_msg)
        message = "completed"
        if failed:
            message = output.error_msg or f"task exited with code {output.exit_code}"
        execution = self._store.update_execution(
            result.execution_id,
            state=S.FAILED if failed else S.COMPLETED,
            desired=D.STOPPED,
            message=message,
            run_output=output,
            published_result=result.published_result,
            details={RESULT_HASH: result.result_hash} if result.result_hash else None,
            expect=(S.BID_ACCEPTED, S.RUNNING, S.PUBLISHING),
        )
        return execution.job_id


def refusal_label(refused_by: str, seen: Mapping[str, int]) -> str:
    """What to count a refusal under: the node's word for what refused it when that looks
    like a rule name and there is room for another name, else "other" ("unknown" when the
    node said nothing, as nodes before RefusedBy do)."""
    if not refused_by:
        return "unknown"
    if not _REFUSAL_LABEL.fullmatch(refused_by):
        return "other"
    if refused_by in seen or len(seen) < MAX_REFUSAL_LABELS:
        return refused_by
    return "other"
