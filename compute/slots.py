"""What a compute node knows of each execution it was asked about: one slot, one state.

::

    (none) --bid--> Reserved --accepted--> Running --run ended--> Finished --pruned--> (none)
       |               \\--rejected, cancelled, expired--> (none)
       \\--cancelled while the bid is being decided--> Withdrawn --decided or pruned--> (none)

*Reserved*: a positive bid holds capacity until the requester accepts it (a direct ask, which
needs no accept, is reserved and started in the same locked step). *Running*: the
capacity is allocated and the run is under way. *Finished*: the run ended; the node keeps
listing it in heartbeats for ``finished_memory_s`` while its result is on its way, so the
requester does not disown it. *Withdrawn*: the requester rejected or cancelled an ask whose
bid a bid worker was still deciding; the decision then reserves nothing.

:class:`Slots` is not thread-safe: the node calls it under its own lock, in the same step as
the capacity change, so no message ever sees a half-made transition.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from protocol.execution import Execution
from protocol.messages import Message
from protocol.resources import Resources


class SlotState(enum.Enum):
    RESERVED = "Reserved"
    RUNNING = "Running"
    FINISHED = "Finished"
    WITHDRAWN = "Withdrawn"


S = SlotState
# Where each state may go; None is "no slot" (never asked, or forgotten).
TRANSITIONS: dict[SlotState | None, frozenset[SlotState | None]] = {
    None: frozenset({S.RESERVED, S.WITHDRAWN}),
    S.RESERVED: frozenset({S.RUNNING, None}),
    S.RUNNING: frozenset({S.FINISHED}),
    S.FINISHED: frozenset({None}),
    S.WITHDRAWN: frozenset({None}),
}
HOLDS_CAPACITY = frozenset({S.RESERVED, S.RUNNING})
# What a heartbeat lists: what holds capacity, and runs whose result may still be on its way.
LISTED = frozenset({S.RESERVED, S.RUNNING, S.FINISHED})


# The requester of a slot withdrawn by an adoption this node refused: the ask it names is
# dropped whoever sends it (its job's new owner asks again under another ID).
ANY_REQUESTER = ""


class SlotTransitionError(RuntimeError):
    """A move the table does not allow: a bug in the node, never the peer's doing."""


@dataclass
class Slot:
    state: SlotState
    requester: str  # the node that asked: only it may accept, reject or cancel
    since_s: float  # when the slot entered its state (node clock)
    execution: Execution | None = None  # None while Withdrawn (the ask is not ours yet)
    needs: Resources = field(default_factory=Resources)  # what it holds (while it does)
    # A finished run's last word to its requester, kept while the slot is, for a requester
    # that takes the job over (AdoptExecution) after it was sent to one that stopped.
    reply: Message | None = None

    @property
    def running(self) -> bool:
        return self.state is S.RUNNING

    @property
    def held(self) -> Execution:
        """The execution of a Reserved, Running or Finished slot."""
        if self.execution is None:
            raise SlotTransitionError(f"a {self.state.value} slot holds no execution")
        return self.execution


class Slots:
    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}

    def get(self, execution_id: str) -> Slot | None:
        return self._slots.get(execution_id)

    def state(self, execution_id: str) -> SlotState | None:
        slot = self._slots.get(execution_id)
        return None if slot is None else slot.state

    def __iter__(self) -> Iterator[tuple[str, Slot]]:
        return iter(list(self._slots.items()))

    def reserve(self, execution: Execution, requester: str, needs: Resources, now_s: float) -> Slot:
        """A positive bid: the execution holds ``needs`` until accepted."""
        self._check(execution.id, S.RESERVED)
        slot = Slot(S.RESERVED, requester, now_s, execution, needs)
        self._slots[execution.id] = slot
        return slot

    def withdraw(self, execution_id: str, requester: str, now_s: float) -> None:
        """``requester`` withdrew an ask this node has not decided yet."""
        self._check(execution_id, S.WITHDRAWN)
        self._slots[execution_id] = Slot(S.WITHDRAWN, requester, now_s)

    def move(self, execution_id: str, to: SlotState | None, now_s: float) -> None:
        """Move a slot along the table (``None``: forget it)."""
        self._check(execution_id, to)
        if to is None:
            del self._slots[execution_id]
            return
        slot = self._slots[execution_id]
        slot.state, slot.since_s = to, now_s
        if to is S.FINISHED and slot.execution is not None and slot.execution.job is not None:
            # remembered for finished_memory_s by its ID only: not the job it carried
            slot.execution = slot.execution.model_copy(update={"job": None})

    def listed(self) -> list[str]:
        """What a heartbeat says this node holds (see :data:`LISTED`), sorted."""
        return sorted(eid for eid, slot in self._slots.items() if slot.state in LISTED)

    def holding_capacity(self) -> list[Slot]:
        return [slot for slot in self._slots.values() if slot.state in HOLDS_CAPACITY]

    def prune(self, horizon_s: float) -> None:
        """Forget Finished and Withdrawn slots older than ``horizon_s``."""
        for execution_id, slot in list(self._slots.items()):
            if slot.state in (S.FINISHED, S.WITHDRAWN) and slot.since_s < horizon_s:
                del self._slots[execution_id]

    def _check(self, execution_id: str, to: SlotState | None) -> None:
        current = self.state(execution_id)
        if to not in TRANSITIONS[current]:
            was = "none" if current is None else current.value
            to_name = "none" if to is None else to.value
            raise SlotTransitionError(f"slot {execution_id}: {was} -> {to_name} is not allowed")
