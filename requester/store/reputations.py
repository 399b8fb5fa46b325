"""Nodes' reputations in the job store (the ``reputations`` table), shared by every requester
that shares the database.

A change is a function of the reputation as stored (:meth:`Reputation.recorded` of one
outcome), applied to the row read under the writer's lock, so outcomes recorded by several
requesters add up instead of the last writer's view replacing the others'. The changes a
batch makes are written at its end, one node after another in ID order: two requesters'
batches that both touch nodes A and B then lock A's row before B's, so reputation rows make
no cycle of waits between them (PostgreSQL aborted one of them as a deadlock when each wrote
its rows in the order its executions ended). Job and execution rows are locked in the order
a pass changes them; each belongs to the one requester that follows its job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from requester.reputation import NO_HISTORY, Reputation
from requester.store.database import Connection

Change = Callable[[Reputation], Reputation]


def load(conn: Connection) -> dict[str, Reputation]:
    """Every node's reputation as last saved."""
    found = conn.execute("SELECT node_id, completed, failed, updated_ns FROM reputations")
    return {
        str(node): Reputation(float(completed), float(failed), int(updated))
        for node, completed, failed, updated in found.fetchall()
    }


def apply(
    conn: Connection, lock_sql: str, changes: Mapping[str, Sequence[Change]]
) -> dict[str, Reputation]:
    """Each node's changes applied to its stored row, nodes in ID order (in the caller's
    transaction); the reputations saved."""
    saved: dict[str, Reputation] = {}
    for node_id in sorted(changes):
        before = _locked(conn, lock_sql, node_id)
        if before is None:  # a first outcome: a row to lock, whoever inserts it first
            conn.execute(
                "INSERT INTO reputations (node_id, completed, failed, updated_ns)"
                " VALUES (?, 0, 0, 0) ON CONFLICT (node_id) DO NOTHING",
                (node_id,),
            )
            before = _locked(conn, lock_sql, node_id) or NO_HISTORY
        after = before
        for change in changes[node_id]:
            after = change(after)
        conn.execute(
            "UPDATE reputations SET completed = ?, failed = ?, updated_ns = ? WHERE node_id = ?",
            (after.completed, after.failed, after.updated_ns, node_id),
        )
        saved[node_id] = after
    return saved


def _locked(conn: Connection, lock_sql: str, node_id: str) -> Reputation | None:
    row = conn.execute(
        f"SELECT completed, failed, updated_ns FROM reputations WHERE node_id = ?{lock_sql}",  # noqa: S608
        (node_id,),
    ).fetchone()
    if row is None:
        return None
    return Reputation(float(row[0]), float(row[1]), int(row[2]))
