"""Simulated compute nodes for ``bench.scale``: the bidding side of the bprotocol, no executor.

A :class:`FakeNode` keeps what a compute node keeps to bid honestly (capacity, reservations,
runs it remembers) and answers as one does: a positive bid reserves a slot, a full node
refuses as busy, BidAccepted "runs" a noop at once and reports RunResult, BidRejected and
CancelExecution free what they name, and reservations expire. Handlers are pure: they take
the time and return the replies to send, so the kombu loop (``bench.scale_worker``) owns
all I/O.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field, replace

from protocol import messages as wire
from protocol.envelope import Codec, Envelope
from protocol.execution import Execution, RunCommandResult
from protocol.messages import (
    AskForBid,
    BidAccepted,
    BidRejected,
    BidResult,
    CancelExecution,
    ComputeError,
    ExecutionStarted,
    Message,
    RunResult,
)
from protocol.node import ComputeNodeInfo, NodeInfo, NodeType
from protocol.resources import Resources

Reply = tuple[str, Message]  # (requester node ID, message)

DEFAULT_CPU = 0.1  # what a task that names no CPU holds (as compute nodes default it)
DEFAULT_MEMORY = 64 * 1024**2
MEMORY_S = 30.0  # how long finished runs and withdrawn asks are remembered
RESERVATION_TTL_S = 30.0  # a positive bid holds its slot this long without an accept


def open_envelopes(codec: Codec, data: bytes) -> list[Envelope]:
    """Every message one body carries, each as its own envelope. The one place that knows
    how messages are grouped: a ``Batch`` envelope (opened by ``Codec.decode_all`` where the
    codec has it) or a ``protocol.messages.Batch`` payload (when the protocol has one,
    whatever its list field is called); anything else is a single message. Raises
    MessageError for a body that does not decode."""
    decode_all = getattr(codec, "decode_all", None)
    envelopes: list[Envelope] = decode_all(data) if decode_all else [codec.decode(data)]
    batch_class = getattr(wire, "Batch", None)
    if batch_class is None:
        return envelopes
    opened: list[Envelope] = []
    for envelope in envelopes:
        if not isinstance(envelope.payload, batch_class):
            opened.append(envelope)
            continue
        for name in type(envelope.payload).model_fields:
            value = getattr(envelope.payload, name)
            for item in value if isinstance(value, list) else ():
                if isinstance(item, Envelope):
                    opened.append(item)
                elif isinstance(item, Message):
                    opened.append(replace(envelope, type=type(item).__name__, payload=item))
    return opened


def encode_replies(codec: Codec, messages: list[Message], batch: bool) -> list[bytes]:
    """Bodies for ``messages`` to one requester: one each, or as few as the codec packs
    them into when ``batch`` and the codec can (``Codec.encode_many``)."""
    encode_many = getattr(codec, "encode_many", None)
    if batch and encode_many is not None:
        return list(encode_many(messages))
    return [codec.encode(message) for message in messages]


@dataclass
class Held:
    execution_id: str
    job_id: str
    requester: str
    needs: Resources
    expires_at: float


@dataclass
class Tally:
    """What the simulated nodes of one process saw and said."""

    asks: int = 0
    bids: int = 0
    busy: int = 0
    accepted: int = 0
    runs: int = 0
    rejected: int = 0
    cancelled: int = 0
    expired: int = 0
    refused_accepts: int = 0
    duplicates: int = 0
    messages_in: int = 0
    messages_out: int = 0
    gossip_out: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def needs_of(execution: Execution) -> Resources:
    """What a job holds here: its task's Resources (or the requester's allocation, whichever
    is more), with the compute defaults for what it leaves empty."""
    asked = Resources()
    if execution.job is not None:
        try:
            asked = execution.job.task.resources.parsed()
        except ValueError:
            asked = Resources()
    allocated = execution.resources()
    return Resources(
        cpu=max(asked.cpu, allocated.cpu) or DEFAULT_CPU,
        memory=max(asked.memory, allocated.memory) or DEFAULT_MEMORY,
    )


@dataclass
class FakeNode:
    node_id: str
    capacity: Resources
    labels: dict[str, str] = field(default_factory=dict)
    boot_id: str = field(default_factory=lambda: secrets.token_hex(8))
    held: dict[str, Held] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    withdrawn: dict[str, float] = field(default_factory=dict)
    seq: int = 0
    changed: bool = False

    @classmethod
    def create(cls, capacity: Resources, labels: dict[str, str]) -> FakeNode:
        return cls(node_id=f"n-{uuid.uuid4()}", capacity=capacity, labels=labels)

    def used(self) -> Resources:
        total = Resources()
        for held in self.held.values():
            total = total + held.needs
        return total

    def info(self, transport: str) -> NodeInfo:
        self.seq += 1
        return NodeInfo(
            node_id=self.node_id,
            node_type=NodeType.COMPUTE,
            labels=self.labels,
            compute_node_info=ComputeNodeInfo(
                execution_engines=["noop"],
                publishers=["noop"],
                storage_sources=["inline"],
                max_capacity=self.capacity,
                available_capacity=self.capacity - self.used(),
                max_job_requirements=self.capacity,
                running_executions=0,  # a noop run ends as it starts
                enqueued_executions=len(self.held),
            ),
            transport=transport,
            seq=self.seq,
            boot_id=self.boot_id,
        )

    def holding(self, now: float) -> list[str] | None:
        """Held executions plus recently finished ones; None when there are none (as a
        node that runs nothing sends no list)."""
        self._prune(now)
        ids = {*self.held, *self.finished}
        return sorted(ids) if ids else None

    def _prune(self, now: float) -> None:
        for memory in (self.finished, self.withdrawn):
            for execution_id in [e for e, at in memory.items() if now - at > MEMORY_S]:
                del memory[execution_id]

    # -- messages ------------------------------------------------------------------------

    def handle(self, sender: str, message: Message, now: float, tally: Tally) -> list[Reply]:
        if isinstance(message, AskForBid):
            return self._on_ask(sender, message, now, tally)
        if isinstance(message, BidAccepted):
            return self._on_accepted(sender, message, now, tally)
        if isinstance(message, BidRejected | CancelExecution):
            rejected = isinstance(message, BidRejected)
            tally.rejected += rejected
            tally.cancelled += not rejected
            self._withdraw(message.execution_id, now)
        return []

    def _on_ask(self, sender: str, ask: AskForBid, now: float, tally: Tally) -> list[Reply]:
        execution = ask.execution
        tally.asks += 1
        if self.withdrawn.pop(execution.id, None) is not None:
            return []
        if execution.id in self.held or execution.id in self.finished:
            tally.duplicates += 1
            return []
        needs = needs_of(execution)
        job_id = execution.job_id
        short = (needs + self.used()).exceeding(self.capacity)
        if short:
            tally.busy += 1
            reason = f"busy: {', '.join(short)}"
            refusal = BidResult(
                execution_id=execution.id, job_id=job_id, accepted=False, reason=reason, busy=True
            )
            return [(sender, refusal)]
        self.held[execution.id] = Held(execution.id, job_id, sender, needs, now + RESERVATION_TTL_S)
        self.changed = True
        tally.bids += 1
        bid = BidResult(execution_id=execution.id, job_id=job_id, accepted=True)
        replies: list[Reply] = [(sender, bid)]
        if not ask.wait_for_approval:
            replies.extend(self._run(execution.id, now, tally))
        return replies

    def _on_accepted(
        self, sender: str, accepted: BidAccepted, now: float, tally: Tally
    ) -> list[Reply]:
        execution_id = accepted.execution_id
        if execution_id in self.finished:
            tally.duplicates += 1
            return []
        if execution_id not in self.held:
            tally.refused_accepts += 1
            refusal = ComputeError(
                execution_id=execution_id,
                job_id=accepted.job_id,
                message="cannot start: no bid of this node is open for it",
                retryable=True,
            )
            return [(sender, refusal)]
        tally.accepted += 1
        return self._run(execution_id, now, tally)

    def _run(self, execution_id: str, now: float, tally: Tally) -> list[Reply]:
        """A noop run: started, done, capacity back, all at once."""
        held = self.held.pop(execution_id)
        self.finished[execution_id] = now
        self.changed = True
        tally.runs += 1
        job_id = held.job_id
        done = RunResult(
            execution_id=execution_id, job_id=job_id, run_output=RunCommandResult(exit_code=0)
        )
        started = ExecutionStarted(execution_id=execution_id, job_id=job_id)
        return [(held.requester, started), (held.requester, done)]

    def _withdraw(self, execution_id: str, now: float) -> None:
        if self.held.pop(execution_id, None) is not None:
            self.changed = True
        elif execution_id not in self.finished:
            self.withdrawn[execution_id] = now  # the ask may still be on its way

    def expire(self, now: float, tally: Tally) -> None:
        """Drop bids whose reservation timed out (no accept came)."""
        for execution_id in [e for e, h in self.held.items() if h.expires_at <= now]:
            del self.held[execution_id]
            tally.expired += 1
            self.changed = True
