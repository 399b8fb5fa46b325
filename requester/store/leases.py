"""Which requester follows which job: one lease row per job, ``(owner, expires_at_ns)``.

An owner claims the jobs it takes, renews its leases with its heartbeat, and releases them
when it stops; a lease its owner stopped renewing expires after its TTL, and another
requester may then claim the job (:meth:`Leases.unowned` lists those). Each claim is one
upsert that takes a row only if it is free, expired or already the claimer's, so when
several requesters claim one job at once exactly one holds it. Times are the caller's clock
(Unix nanoseconds): owners' clocks must agree to well within a TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protocol.errors import NotFoundError, ValidationError
from protocol.ids import now_ns as clock_ns
from protocol.states import ExecutionStateType
from requester.store.core import ACTIVE_JOB_STATES
from requester.store.database import Connection, Database

NS_PER_S = 1_000_000_000


def _marks(count: int) -> str:
    return ", ".join("?" * count)


DEFAULT_TTL_S = 15.0
_ACTIVE = tuple(state.value for state in ACTIVE_JOB_STATES)  # jobs not ended
_ACTIVE_MARKS = _marks(len(_ACTIVE))
_LIVE = tuple(state.value for state in ExecutionStateType if not state.terminal)
# SQL: the leased job has an execution not yet ended (parameters: _LIVE)
_RUNS_LIVE = (
    "EXISTS (SELECT 1 FROM executions WHERE executions.job_id = leases.job_id"  # noqa: S608
    f" AND executions.state IN ({_marks(len(_LIVE))}))"
)


def insert_lease(conn: Connection, job_id: str, owner: str, expires_at_ns: int) -> None:
    """The lease of a job just created (in its transaction), to whoever created it."""
    conn.execute(
        "INSERT INTO leases (job_id, owner, expires_at_ns) VALUES (?, ?, ?)",
        (job_id, owner, expires_at_ns),
    )


def delete_lease(conn: Connection, job_id: str, owner: str) -> None:
    """``owner``'s lease of a job that ended (in that transaction): it follows the job no
    more. Another requester's lease stays: the job ended through this one (a stop), and the
    executions its owner asked for are the owner's to cancel (:meth:`Leases.ended`)."""
    conn.execute("DELETE FROM leases WHERE job_id = ? AND owner = ?", (job_id, owner))


class Leases:
    def __init__(self, database: Database) -> None:
        self._db = database

    def claim(
        self, owner: str, job_ids: Iterable[str], ttl_s: float, now_ns: int | None = None
    ) -> list[str]:
        """Take the lease of each job that is free or expired, and renew those ``owner``
        already holds, until ``ttl_s`` from now; the IDs ``owner`` holds afterwards.
        :class:`NotFoundError` for a job the store does not have (nothing is claimed)."""
        wanted = sorted(set(job_ids))  # one order for every claimer: no deadlock between them
        if not owner:
            raise ValidationError("owner", "a lease needs an owner")
        if ttl_s <= 0:
            raise ValidationError("ttl_s", "must be positive")
        if not wanted:
            return []
        now = clock_ns() if now_ns is None else now_ns
        expires = now + int(ttl_s * NS_PER_S)
        with self._db.transaction() as conn:
            known = {
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM jobs WHERE id IN ({_marks(len(wanted))})",  # noqa: S608
                    wanted,
                ).fetchall()
            }
            missing = [job_id for job_id in wanted if job_id not in known]
            if missing:
                raise NotFoundError(f"job {missing[0]} not found")
            for job_id in wanted:
                conn.execute(
                    "INSERT INTO leases (job_id, owner, expires_at_ns) VALUES (?, ?, ?)"
                    " ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner,"
                    " expires_at_ns = excluded.expires_at_ns"
                    " WHERE leases.owner = excluded.owner OR leases.expires_at_ns <= ?",
                    (job_id, owner, expires, now),
                )
            return self._owned(conn, owner, wanted)

    def renew(self, owner: str, ttl_s: float, now_ns: int | None = None) -> list[str]:
        """Push every lease ``owner`` still holds to ``ttl_s`` from now (its heartbeat); the
        IDs it holds. A lease that lapsed is not renewed: it is claimed again (:meth:`claim`,
        by whoever comes first), so the one who gets it knows it has to follow the job."""
        now = clock_ns() if now_ns is None else now_ns
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE leases SET expires_at_ns = ? WHERE owner = ? AND expires_at_ns > ?",
                (now + int(ttl_s * NS_PER_S), owner, now),
            )
            rows = conn.execute(
                "SELECT job_id FROM leases WHERE owner = ? AND expires_at_ns > ? ORDER BY job_id",
                (owner, now),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def release(self, owner: str, job_ids: Sequence[str] | None = None) -> None:
        """Give up ``owner``'s leases of ``job_ids`` (None: all of them), so that another
        requester may claim those jobs at once."""
        with self._db.transaction() as conn:
            if job_ids is None:
                conn.execute("DELETE FROM leases WHERE owner = ?", (owner,))
            elif job_ids:
                conn.execute(
                    f"DELETE FROM leases WHERE owner = ? AND job_id IN ({_marks(len(job_ids))})",  # noqa: S608
                    (owner, *job_ids),
                )

    def owner(self, job_id: str, now_ns: int | None = None) -> str | None:
        """Who holds the job's lease now; None when nobody does (free or expired)."""
        now = clock_ns() if now_ns is None else now_ns
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT owner FROM leases WHERE job_id = ? AND expires_at_ns > ?", (job_id, now)
            ).fetchone()
        return None if row is None else str(row[0])

    def held(self, owner: str, now_ns: int | None = None) -> list[str]:
        """The jobs whose lease ``owner`` holds now, by ID."""
        now = clock_ns() if now_ns is None else now_ns
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT job_id FROM leases WHERE owner = ? AND expires_at_ns > ? ORDER BY job_id",
                (owner, now),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def unowned(self, now_ns: int | None = None) -> list[str]:
        """The jobs :meth:`lapsed` lists, oldest first: what a requester takes over."""
        return list(self.lapsed(now_ns))

    def lapsed(self, now_ns: int | None = None) -> dict[str, str]:
        """Jobs somebody must follow that nobody holds a live lease of, oldest first, each
        with the owner whose lease lapsed ("" for a job that never had one): jobs not yet
        ended, and ended ones whose owner died before it cancelled their executions (a stop
        through another requester leaves the lease to the owner)."""
        now = clock_ns() if now_ns is None else now_ns
        query = (
            "SELECT id, owner FROM ("  # noqa: S608
            "SELECT jobs.id AS id, leases.owner AS owner, jobs.created_ns AS created_ns"
            " FROM jobs LEFT JOIN leases ON leases.job_id = jobs.id"
            f" WHERE jobs.state IN ({_ACTIVE_MARKS})"
            " AND (leases.job_id IS NULL OR leases.expires_at_ns <= ?)"
            " UNION ALL"
            " SELECT jobs.id, leases.owner, jobs.created_ns"
            " FROM leases JOIN jobs ON jobs.id = leases.job_id"
            f" WHERE jobs.state NOT IN ({_ACTIVE_MARKS}) AND leases.expires_at_ns <= ?"
            f" AND {_RUNS_LIVE}"
            ") AS lapsed ORDER BY created_ns, id"
        )
        with self._db.read() as conn:
            rows = conn.execute(query, (*_ACTIVE, now, *_ACTIVE, now, *_LIVE)).fetchall()
        return {str(row[0]): str(row[1] or "") for row in rows}

    def ended(self, owner: str, now_ns: int | None = None) -> list[str]:
        """The jobs ``owner`` holds a live lease of that have ended all the same (another
        requester stopped them), by ID: the owner carries the stop out, then releases them."""
        now = clock_ns() if now_ns is None else now_ns
        query = (
            "SELECT leases.job_id FROM leases JOIN jobs ON jobs.id = leases.job_id"  # noqa: S608
            f" WHERE leases.owner = ? AND leases.expires_at_ns > ?"
            f" AND jobs.state NOT IN ({_ACTIVE_MARKS}) ORDER BY leases.job_id"
        )
        with self._db.read() as conn:
            rows = conn.execute(query, (owner, now, *_ACTIVE)).fetchall()
        return [str(row[0]) for row in rows]

    def sweep(self, now_ns: int | None = None) -> None:
        """Delete the lapsed leases of jobs that ended with nothing left running (their
        owner stopped renewing before it let them go): nobody needs to claim them."""
        now = clock_ns() if now_ns is None else now_ns
        query = (
            "DELETE FROM leases WHERE expires_at_ns <= ?"  # noqa: S608
            " AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = leases.job_id"
            f" AND jobs.state NOT IN ({_ACTIVE_MARKS}))"
            f" AND NOT {_RUNS_LIVE}"
        )
        with self._db.transaction() as conn:
            conn.execute(query, (now, *_ACTIVE, *_LIVE))

    def _owned(self, conn: Connection, owner: str, job_ids: Sequence[str] | None) -> list[str]:
        query = "SELECT job_id FROM leases WHERE owner = ?"
        params: list[str] = [owner]
        if job_ids is not None:
            query += f" AND job_id IN ({_marks(len(job_ids))})"
            params += job_ids
        rows = conn.execute(query + " ORDER BY job_id", params).fetchall()
        return [str(row[0]) for row in rows]
