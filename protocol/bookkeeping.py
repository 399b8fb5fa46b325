"""The requester's own bookkeeping of jobs and executions, typed and off the wire.

The scheduler needs to remember a few things about a job waiting for nodes (when it was first
queued, when its rounds of asks start, how many it has had) and about an execution that ended
(could another node succeed? did it ever run? was its node merely full?). They are decisions
of this requester, not part of Bacalhau's public models, so they live in typed columns of the
job store and ride on :class:`~protocol.job.Job` and :class:`~protocol.execution.Execution` as
private attributes: never serialised, never read from a client's JSON or a node's message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Queueing:
    """A job waiting for nodes. All zero when it is not queued."""

    since_ns: int = 0  # when it was first queued (its queue timeout counts from here)
    round_ns: int = 0  # when its current (or next) round of asks starts
    prev_round_ns: int = 0  # when the round before that started
    retries: int = 0  # rounds so far: the backoff grows with them


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the requester concluded when an execution ended (or, for ``mismatched``, when
    the job's results were compared). All false while it is live."""

    retryable: bool = False  # another node may well succeed where this one failed
    never_ran: bool = False  # ended while bidding: not an attempt to run, the queue bounds it
    busy: bool = False  # refused for lack of room, not for anything the job asks
    mismatched: bool = False  # completed, but its result is not the one most agree on


NOT_QUEUED = Queueing()
NO_VERDICT = Verdict()
