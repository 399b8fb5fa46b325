"""A requester's leases, kept: renewed on every heartbeat, released when it stops.

Only a requester on a shared job store (PostgreSQL) keeps leases. One that stops renewing
(killed, or cut off from the database) loses them ``lease_ttl_s`` after its last renewal.
"""

from __future__ import annotations

import logging
import threading

from requester.store import Leases

log = logging.getLogger("bacalao.requester")


class LeaseKeeper:
    def __init__(self, leases: Leases, owner: str, ttl_s: float, interval_s: float) -> None:
        if ttl_s <= interval_s:
            raise ValueError(f"a lease TTL ({ttl_s} s) must outlast a heartbeat ({interval_s} s)")
        self._leases = leases
        self._owner = owner
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self.held: list[str] = []  # the jobs whose lease the last renewal kept

    def start(self) -> None:
        self._thread.start()

    def renew(self) -> list[str]:
        """Renew every lease this owner holds now; the jobs it holds."""
        self.held = self._leases.renew(self._owner, self._ttl_s)
        log.debug("event=leases_renewed owner=%s held=%d", self._owner, len(self.held))
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
