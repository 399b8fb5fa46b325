"""Which jobs a requester acts on. On a job store of its own, every one; on a store several
requesters share, those whose lease it holds (:mod:`requester.store.leases`): every
requester reads every job, but only the one that follows a job schedules it, asks compute
nodes for it and hears them, so nothing is acted on twice. The leases are read once per
question, not cached: another requester may claim a lease this one let lapse at any beat.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from protocol.execution import Execution
from requester.store import JobStore


class Following:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    @property
    def shared(self) -> bool:
        """Whether other requesters share the store (and the jobs are leased)."""
        return bool(self._store.lease_owner)

    def jobs(self, job_ids: Iterable[str], also: Collection[str] = ()) -> list[str]:
        """Of ``job_ids``, in their order, those this requester follows, and those of
        ``also`` (jobs it must act on without a lease of its own: one stopped through its API
        that no other requester follows)."""
        owner = self._store.lease_owner
        if not owner:
            return list(job_ids)
        held = set(self._store.leases.held(owner))
        return [job_id for job_id in job_ids if job_id in held or job_id in also]

    def live_executions(self) -> list[Execution]:
        """The live executions of the jobs this requester follows."""
        live = self._store.live_executions()
        if not self.shared or not live:
            return live
        mine = set(self.jobs({execution.job_id for execution in live}))
        return [execution for execution in live if execution.job_id in mine]
