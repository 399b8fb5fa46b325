"""What a phase of the benchmark cost: CPU of the processes it started, Redis traffic, SQLite.

Counters are read before and after each phase and subtracted. They cover everything that
happened meanwhile, so gossip, heartbeats and the benchmark's own polling are included.

Redis traffic is server-wide (``INFO stats`` and ``INFO commandstats``), which is why the
systems never run side by side: one set of processes is stopped before the other starts.

- *commands* are ``commandstats`` calls: every command counts, MULTI and EXEC included, and
  each command queued inside a MULTI...EXEC block counts when EXEC runs it.
- *round trips* are the read events Redis processed (``total_reads_processed``). A client
  writes one request and waits for its answer; the request arrives as one read whether it is
  a single command, a pipeline, or a MULTI...EXEC block (redis-py sends a whole block in one
  write), so a MULTI...EXEC block counts as one round trip, and a blocking BRPOP counts once
  however long it waits. Only a request larger than the client's write chunk (~6 KB for
  redis-py), or a connection closing, adds a read without a command of its own.

The benchmark's own INFO calls are left out of both.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from bench._procs import Started, cpu_ms, rss_mib


@dataclass(frozen=True)
class RedisCounters:
    """Calls per command (lower case, e.g. ``brpop``) and read events, so far or in a phase."""

    commands: Mapping[str, int]
    reads: int

    def minus(self, before: RedisCounters) -> RedisCounters:
        names = set(self.commands) | set(before.commands)
        calls = {n: self.commands.get(n, 0) - before.commands.get(n, 0) for n in names}
        # the later INFO read itself (the earlier one is in both totals)
        return RedisCounters({n: c for n, c in calls.items() if c}, self.reads - before.reads - 1)

    @property
    def total(self) -> int:
        return sum(self.commands.values())


def redis_counters(client: redis.Redis) -> RedisCounters:
    info: dict[str, Any] = client.info("stats", "commandstats")
    calls = {
        key.removeprefix("cmdstat_"): int(value["calls"])
        for key, value in info.items()
        if key.startswith("cmdstat_") and key != "cmdstat_info"
    }
    return RedisCounters(calls, int(info["total_reads_processed"]))


@dataclass(frozen=True)
class StoreCounters:
    """The requester's SQLite work, from ``GET /api/v1/agent/debug``."""

    transactions: int
    statements: int

    def minus(self, before: StoreCounters) -> StoreCounters:
        return StoreCounters(
            self.transactions - before.transactions, self.statements - before.statements
        )


@dataclass(frozen=True)
class Snapshot:
    at: float
    cpu_ms: float
    cpu_ms_by: dict[str, float]
    client_cpu_ms: float
    redis: RedisCounters
    store: StoreCounters | None
    rss_mib_by: dict[str, float] = field(default_factory=dict)


def snapshotter(
    processes: Callable[[], Sequence[Started]],
    client: redis.Redis,
    store: Callable[[], StoreCounters | None] = lambda: None,
) -> Callable[[], Snapshot]:
    """Reads the counters of one system: its processes (Redis included), Redis, its store."""

    def snapshot() -> Snapshot:
        started = processes()
        by = {p.name: cpu_ms(p.pid) for p in started}
        return Snapshot(
            at=time.monotonic(),
            cpu_ms=sum(by.values()),
            cpu_ms_by=by,
            client_cpu_ms=time.process_time() * 1000,
            redis=redis_counters(client),
            store=store(),
            rss_mib_by={p.name: rss_mib(p.pid) for p in started},
        )

    return snapshot


@dataclass
class Outcome:
    """What a phase did, as its runner saw it."""

    jobs: int
    failed: int = 0
    throughput: float | None = None
    submit_rate: float | None = None  # jobs/s the client submitted at, client-side clock
    latencies_ms: list[float] = field(default_factory=list)
    note: str = ""
    timed_out: bool = False  # jobs were left unfinished at the deadline


@dataclass
class Phase:
    """One measured phase: an outcome and what it cost."""

    system: str
    kind: str
    label: str
    outcome: Outcome
    wall_s: float
    cpu_ms: float
    client_cpu_ms: float
    redis: RedisCounters
    store: StoreCounters | None
    cpu_ms_by: dict[str, float] = field(default_factory=dict)  # by process name
    rss_mib_by: dict[str, float] = field(default_factory=dict)  # at the end, by process name

    def per_job(self, value: float | None) -> float | None:
        if value is None or not self.outcome.jobs:
            return None
        return value / self.outcome.jobs

    def percentile(self, pct: int) -> float | None:
        return percentile(self.outcome.latencies_ms, pct)


def measure(
    snapshot: Callable[[], Snapshot],
    system: str,
    kind: str,
    label: str,
    run: Callable[[], Outcome],
) -> Phase:
    before = snapshot()
    outcome = run()
    after = snapshot()
    store = None
    if after.store is not None and before.store is not None:
        store = after.store.minus(before.store)
    return Phase(
        system=system,
        kind=kind,
        label=label,
        outcome=outcome,
        wall_s=after.at - before.at,
        cpu_ms=after.cpu_ms - before.cpu_ms,
        client_cpu_ms=after.client_cpu_ms - before.client_cpu_ms,
        redis=after.redis.minus(before.redis),
        store=store,
        cpu_ms_by={
            name: ms - before.cpu_ms_by[name]
            for name, ms in after.cpu_ms_by.items()
            if name in before.cpu_ms_by
        },
        rss_mib_by=after.rss_mib_by,
    )


def percentile(values: Sequence[float], pct: int) -> float | None:
    """The ``pct``-th percentile (inclusive method), None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def throughput(jobs: int, first_ns: int, last_ns: int) -> float | None:
    """Jobs per second between the first submission and the last completion."""
    if jobs <= 0 or last_ns <= first_ns:
        return None
    return jobs / ((last_ns - first_ns) / 1e9)


@dataclass(frozen=True)
class Idle:
    """Redis traffic and CPU per second of an idle system: what every phase carries on top."""

    commands_per_s: float
    reads_per_s: float
    cpu_ms_per_s: float


def idle_traffic(snapshot: Callable[[], Snapshot], seconds: float) -> Idle:
    before = snapshot()
    time.sleep(seconds)  # a measurement window, not synchronisation
    after = snapshot()
    delta = after.redis.minus(before.redis)
    elapsed = after.at - before.at
    return Idle(
        delta.total / elapsed, delta.reads / elapsed, (after.cpu_ms - before.cpu_ms) / elapsed
    )
