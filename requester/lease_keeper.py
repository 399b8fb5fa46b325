"""A requester's leases, kept: renewed on every heartbeat, released when it stops.

Only a requester on a shared job store (PostgreSQL) keeps leases. One that stops renewing
(killed, or cut off from the database) loses them ``lease_ttl_s`` after its last renewal;
on each beat every requester claims the lapsed leases of jobs not yet ended and takes those
jobs over (``on_taken``). A claim takes a lease only if it is free or lapsed, so when
several requesters claim one job at once exactly one gets it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from requester.store import Leases

log = logging.getLogger("bacalao.requester")


class LeaseKeeper:
    def __init__(
        self,
        leases: Leases,
        owner: str,
        ttl_s: float,
        interval_s: float,
        on_taken: Callable[[Sequence[str], Sequence[str]], None] | None = None,
        on_ended: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        if ttl_s <= interval_s:
            raise ValueError(f"a lease TTL ({ttl_s} s) must outlast a heartbeat ({interval_s} s)")
        self._leases = leases
        self._owner = owner
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._on_taken = on_taken
        self._on_ended = on_ended
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self.held: list[str] = []  # the jobs whose lease the last renewal kept

    def start(self) -> None:
        self._thread.start()

    def renew(self) -> list[str]:
        """Renew every lease this owner holds now, then claim the lapsed ones: the jobs taken
        from another owner go to ``on_taken``, those whose lease this owner itself let lapse
        (it was down longer than the TTL) to ``on_resumed``; those it holds that another
        requester ended (a stop) to ``on_ended``, which carries the stop out on the
        executions this one asked for and releases them. The jobs it holds."""
        held = set(self._leases.renew(self._owner, self._ttl_s))
        lapsed = self._leases.lapsed()
        claimed = set(self._leases.claim(self._owner, lapsed, self._ttl_s)) - held
        taken = [job_id for job_id in lapsed if job_id in claimed and lapsed[job_id] != self._owner]
        resumed = [
            job_id for job_id in lapsed if job_id in claimed and lapsed[job_id] == self._owner
        ]
        self.held = sorted(held | claimed)
        ended = self._leases.ended(self._owner)
        self._leases.sweep()
        log.debug("event=leases_renewed owner=%s held=%d", self._owner, len(self.held))
        if (taken or resumed) and self._on_taken is not None:
            self._on_taken(taken, resumed)
        if ended and self._on_ended is not None:
            self._on_ended(ended)
        return self.held

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                self.renew()
            except Exception as exc:  # the database may come back before the TTL runs out
                log.warning("event=lease_renewal_failed owner=%s error=%r", self._owner, exc)

    def stop(self) -> None:
        """Stop renewing and give the leases up, so another requester may take the jobs at
        once."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self._leases.release(self._owner)
        except Exception as exc:  # stopping anyway: the leases expire on their own
            log.warning("event=lease_release_failed owner=%s error=%r", self._owner, exc)
