"""The job store's tables, one list of versions for every backend.

Each :class:`Migration` is one schema version, written once per SQL dialect: the shape (what
tables and columns exist at version N) is the same on SQLite and PostgreSQL; only the types
and the JSON functions differ. A backend applies, in order and one transaction each, the
versions its database has not seen, and refuses a database written by a newer bacalao.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema version: why it exists, and its statements in each dialect."""

    why: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]


# PostgreSQL: BIGINT where SQLite's INTEGER holds nanoseconds (PostgreSQL's INTEGER is 32
# bits), DOUBLE PRECISION for REAL (PostgreSQL's REAL is 32 bits), and text compared
# byte-wise (COLLATE "C"), as SQLite's BINARY collation does, so orderings, page tokens and
# ID prefixes agree whatever the database's locale.
_PG_TEXT = 'TEXT COLLATE "C"'

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "jobs, their executions and their history",
        sqlite=(
            """CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                namespace TEXT NOT NULL,
                name TEXT NOT NULL,
                state TEXT NOT NULL,
                created_ns INTEGER NOT NULL,
                modified_ns INTEGER NOT NULL,
                json TEXT NOT NULL
            )""",
            "CREATE INDEX jobs_namespace_created ON jobs (namespace, created_ns, id)",
            "CREATE INDEX jobs_state ON jobs (state, created_ns)",
            """CREATE TABLE executions (
                id TEXT PRIMARY KEY,
                job_id TEXT NOT NULL REFERENCES jobs (id),
                node_id TEXT NOT NULL,
                state INTEGER NOT NULL,
                desired_state INTEGER NOT NULL,
                created_ns INTEGER NOT NULL,
                modified_ns INTEGER NOT NULL,
                json TEXT NOT NULL
            )""",
            "CREATE INDEX executions_job_id ON executions (job_id, created_ns)",
            """CREATE TABLE history (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                job_id TEXT NOT NULL,
                execution_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                type TEXT NOT NULL,
                time_ns INTEGER NOT NULL,
                json TEXT NOT NULL
            )""",
            "CREATE INDEX history_job_id ON history (job_id, id)",
        ),
        postgresql=(
            f"""CREATE TABLE jobs (
                id {_PG_TEXT} PRIMARY KEY,
                namespace {_PG_TEXT} NOT NULL,
                name {_PG_TEXT} NOT NULL,
                state {_PG_TEXT} NOT NULL,
                created_ns BIGINT NOT NULL,
                modified_ns BIGINT NOT NULL,
                json TEXT NOT NULL
            )""",
            "CREATE INDEX jobs_namespace_created ON jobs (namespace, created_ns, id)",
            "CREATE INDEX jobs_state ON jobs (state, created_ns)",
            f"""CREATE TABLE executions (
                id {_PG_TEXT} PRIMARY KEY,
                job_id {_PG_TEXT} NOT NULL REFERENCES jobs (id),
                node_id {_PG_TEXT} NOT NULL,
                state INTEGER NOT NULL,
                desired_state INTEGER NOT NULL,
                created_ns BIGINT NOT NULL,
                modified_ns BIGINT NOT NULL,
                json TEXT NOT NULL
            )""",
            "CREATE INDEX executions_job_id ON executions (job_id, created_ns)",
            f"""CREATE TABLE history (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                job_id {_PG_TEXT} NOT NULL,
                execution_id {_PG_TEXT} NOT NULL,
                node_id {_PG_TEXT} NOT NULL,
                type {_PG_TEXT} NOT NULL,
                time_ns BIGINT NOT NULL,
                json TEXT NOT NULL
            )""",
            "CREATE INDEX history_job_id ON history (job_id, id)",
        ),
    ),
    Migration(
        "the requester's audit reads live executions across jobs every few seconds",
        sqlite=("CREATE INDEX executions_state ON executions (state)",),
        postgresql=("CREATE INDEX executions_state ON executions (state)",),
    ),
    Migration(
        "the scheduler's bookkeeping moves from strings in the public State.Details to typed"
        " columns (protocol.bookkeeping); what older versions wrote there is carried over",
        sqlite=(
            "ALTER TABLE jobs ADD COLUMN queued_since_ns INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN round_ns INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN prev_round_ns INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0",
            """UPDATE jobs SET
                queued_since_ns = CAST(coalesce(
                    json_extract(json, '$.State.Details.QueuedSince'), 0) AS INTEGER),
                round_ns = CAST(coalesce(json_extract(json, '$.State.Details.Round'), 0)
                    AS INTEGER),
                prev_round_ns = CAST(coalesce(json_extract(json, '$.State.Details.PrevRound'), 0)
                    AS INTEGER),
                retries = CAST(coalesce(json_extract(json, '$.State.Details.Retries'), 0)
                    AS INTEGER),
                json = json_remove(json, '$.State.Details.QueuedSince', '$.State.Details.Round',
                    '$.State.Details.PrevRound', '$.State.Details.Retries')
            WHERE json_extract(json, '$.State.Details') IS NOT NULL""",
            "ALTER TABLE executions ADD COLUMN retryable INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE executions ADD COLUMN never_ran INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE executions ADD COLUMN busy INTEGER NOT NULL DEFAULT 0",
            """UPDATE executions SET
                retryable = coalesce(
                    json_extract(json, '$.ComputeState.Details.Retryable') = 'true', 0),
                never_ran = coalesce(
                    json_extract(json, '$.ComputeState.Details.NeverRan') = 'true', 0),
                busy = coalesce(json_extract(json, '$.ComputeState.Details.Busy') = 'true', 0),
                json = json_remove(json, '$.ComputeState.Details.Retryable',
                    '$.ComputeState.Details.NeverRan', '$.ComputeState.Details.Busy')
            WHERE json_extract(json, '$.ComputeState.Details') IS NOT NULL""",
        ),
        postgresql=(
            "ALTER TABLE jobs ADD COLUMN queued_since_ns BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN round_ns BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN prev_round_ns BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0",
            """UPDATE jobs SET
                queued_since_ns = coalesce((json::jsonb #>> '{State,Details,QueuedSince}')::bigint,
                    0),
                round_ns = coalesce((json::jsonb #>> '{State,Details,Round}')::bigint, 0),
                prev_round_ns = coalesce((json::jsonb #>> '{State,Details,PrevRound}')::bigint,
                    0),
                retries = coalesce((json::jsonb #>> '{State,Details,Retries}')::integer, 0),
                json = (json::jsonb #- '{State,Details,QueuedSince}' #- '{State,Details,Round}'
                    #- '{State,Details,PrevRound}' #- '{State,Details,Retries}')::text
            WHERE jsonb_typeof(json::jsonb #> '{State,Details}') = 'object'""",
            "ALTER TABLE executions ADD COLUMN retryable INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE executions ADD COLUMN never_ran INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE executions ADD COLUMN busy INTEGER NOT NULL DEFAULT 0",
            """UPDATE executions SET
                retryable = (json::jsonb #>> '{ComputeState,Details,Retryable}'
                    IS NOT DISTINCT FROM 'true')::integer,
                never_ran = (json::jsonb #>> '{ComputeState,Details,NeverRan}'
                    IS NOT DISTINCT FROM 'true')::integer,
                busy = (json::jsonb #>> '{ComputeState,Details,Busy}'
                    IS NOT DISTINCT FROM 'true')::integer,
                json = (json::jsonb #- '{ComputeState,Details,Retryable}'
                    #- '{ComputeState,Details,NeverRan}' #- '{ComputeState,Details,Busy}')::text
            WHERE jsonb_typeof(json::jsonb #> '{ComputeState,Details}') = 'object'""",
        ),
    ),
    Migration(
        "each node's reputation (requester/reputation.py), kept across restarts",
        sqlite=(
            """CREATE TABLE reputations (
                node_id TEXT PRIMARY KEY,
                completed REAL NOT NULL,
                failed REAL NOT NULL,
                updated_ns INTEGER NOT NULL
            )""",
        ),
        postgresql=(
            f"""CREATE TABLE reputations (
                node_id {_PG_TEXT} PRIMARY KEY,
                completed DOUBLE PRECISION NOT NULL,
                failed DOUBLE PRECISION NOT NULL,
                updated_ns BIGINT NOT NULL
            )""",
        ),
    ),
    Migration(
        "a verified job's executions whose result lost the vote (requester/verifier.py)",
        sqlite=("ALTER TABLE executions ADD COLUMN mismatched INTEGER NOT NULL DEFAULT 0",),
        postgresql=("ALTER TABLE executions ADD COLUMN mismatched INTEGER NOT NULL DEFAULT 0",),
    ),
    Migration(
        "which requester follows which job: a lease its owner renews (requester/store/leases.py)",
        sqlite=(
            """CREATE TABLE leases (
                job_id TEXT PRIMARY KEY REFERENCES jobs (id),
                owner TEXT NOT NULL,
                expires_at_ns INTEGER NOT NULL
            )""",
            "CREATE INDEX leases_owner ON leases (owner, expires_at_ns)",
        ),
        postgresql=(
            f"""CREATE TABLE leases (
                job_id {_PG_TEXT} PRIMARY KEY REFERENCES jobs (id),
                owner {_PG_TEXT} NOT NULL,
                expires_at_ns BIGINT NOT NULL
            )""",
            "CREATE INDEX leases_owner ON leases (owner, expires_at_ns)",
        ),
    ),
    Migration(
        "a page of jobs, newest or last changed first, in one namespace or all, is read from"
        " an index instead of sorting every job stored",
        sqlite=(
            "CREATE INDEX jobs_created ON jobs (created_ns, id)",
            "CREATE INDEX jobs_modified ON jobs (modified_ns, id)",
            "CREATE INDEX jobs_namespace_modified ON jobs (namespace, modified_ns, id)",
            "CREATE INDEX jobs_namespace_id ON jobs (namespace, id)",
        ),
        postgresql=(
            "CREATE INDEX jobs_created ON jobs (created_ns, id)",
            "CREATE INDEX jobs_modified ON jobs (modified_ns, id)",
            "CREATE INDEX jobs_namespace_modified ON jobs (namespace, modified_ns, id)",
            "CREATE INDEX jobs_namespace_id ON jobs (namespace, id)",
        ),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# What a Job or an Execution is read from: its JSON and its bookkeeping columns.
JOB_COLUMNS = "json, queued_since_ns, round_ns, prev_round_ns, retries"
EXECUTION_COLUMNS = "json, retryable, never_ran, busy, mismatched"


def newer_schema_problem(found: int) -> str:
    """What to tell the operator of a database written by a newer bacalao."""
    return (
        f"job store schema version {found} is newer than this bacalao understands "
        f"({SCHEMA_VERSION}); upgrade bacalao or use another data dir"
    )
