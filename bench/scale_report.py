"""What ``bench.scale`` measured for each cluster size, and how it prints it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.scale_api import Outcome


@dataclass(frozen=True)
class Rates:
    """Costs over one window of ``wall_s`` seconds."""

    wall_s: float
    requester_ms: float
    workers_ms: float
    redis_ms: float
    redis_by_command: dict[str, int]

    @property
    def redis_commands(self) -> int:
        return sum(self.redis_by_command.values())

    def per_s(self, amount: float) -> float:
        return amount / self.wall_s

    def top_commands(self, per: float, count: int = 4) -> str:
        """The commands Redis ran most, each as calls / ``per``."""
        ranked = sorted(self.redis_by_command.items(), key=lambda item: -item[1])[:count]
        return " ".join(f"{name.upper()} {calls / per:.1f}" for name, calls in ranked)


@dataclass
class SizeResult:
    nodes: int
    jobs: int
    heartbeat_s: float
    processes: int = 0
    join_s: float = 0.0
    submit_s: float = 0.0
    idle: Rates | None = None
    busy: Rates | None = None
    outcome: Outcome | None = None
    tally: Counter[str] = field(default_factory=Counter)
    profile: list[str] = field(default_factory=list)
    error: str = ""

    def add_worker_stats(self, paths: Sequence[Path]) -> None:
        for path in paths:
            try:
                stats = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            self.tally.update({key: int(value) for key, value in stats.items()})

    def _idle_share(self, amount_per_s: float) -> float:
        """What idle gossip costs over the job phase's wall time."""
        return amount_per_s * (self.busy.wall_s if self.busy else 0.0)

    @property
    def scheduling_ms_per_job(self) -> float | None:
        """Requester CPU-ms per job, idle gossip cost over the same wall time taken out."""
        if self.busy is None or self.idle is None or not self.jobs:
            return None
        idle = self._idle_share(self.idle.per_s(self.idle.requester_ms))
        return (self.busy.requester_ms - idle) / self.jobs

    @property
    def redis_commands_per_job(self) -> float | None:
        if self.busy is None or self.idle is None or not self.jobs:
            return None
        idle = self._idle_share(self.idle.per_s(self.idle.redis_commands))
        return (self.busy.redis_commands - idle) / self.jobs

    @property
    def throughput(self) -> float | None:
        """Jobs per second from the first job's creation to the last one's end."""
        outcome = self.outcome
        if outcome is None or not outcome.span_s:
            return None
        return outcome.terminal / outcome.span_s


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_size(result: SizeResult) -> None:
    """One cluster size, in full."""
    print(f"  node processes {result.processes}, all {result.nodes} listed after "
          f"{result.join_s:.1f}s")  # fmt: skip
    idle = result.idle
    if idle is not None:
        print(
            f"  idle {idle.wall_s:.1f}s, gossip {result.nodes / result.heartbeat_s:.0f} msg/s: "
            f"redis {idle.per_s(idle.redis_commands):.0f} cmd/s "
            f"{idle.per_s(idle.redis_ms):.1f} CPU-ms/s, "
            f"requester {idle.per_s(idle.requester_ms):.1f} CPU-ms/s, "
            f"node processes {idle.per_s(idle.workers_ms):.1f} CPU-ms/s"
        )
        print(f"  idle redis cmd/s: {idle.top_commands(idle.wall_s)}")
    outcome, busy = result.outcome, result.busy
    if outcome is not None and busy is not None:
        states = ", ".join(f"{state} {n}" for state, n in sorted(outcome.states.items()))
        late = " (deadline reached)" if outcome.timed_out else ""
        print(
            f"  {result.jobs} jobs: {states}{late}; submitted in {result.submit_s:.1f}s, "
            f"all terminal after {busy.wall_s:.1f}s, {_num(result.throughput)} jobs/s"
        )
        print(
            f"  per job: requester {_num(result.scheduling_ms_per_job, 2)} CPU-ms "
            f"({busy.requester_ms / result.jobs:.2f} before taking out idle gossip), "
            f"redis {_num(result.redis_commands_per_job)} cmds, "
            f"node processes {busy.workers_ms / result.jobs:.2f} CPU-ms"
        )
        print(f"  redis cmd/job (idle included): {busy.top_commands(result.jobs)}")
    tally = result.tally
    if tally and result.jobs:
        print(
            f"  nodes saw per job: {tally['asks'] / result.jobs:.2f} asks "
            f"({tally['busy'] / result.jobs:.2f} refused busy), "
            f"{tally['rejected'] / result.jobs:.2f} rejections, "
            f"{tally['runs'] / result.jobs:.2f} runs; "
            f"messages in {tally['messages_in']}, out {tally['messages_out']}, "
            f"gossip out {tally['gossip_out']}, dropped {tally['dropped']}, "
            f"expired bids {tally['expired']}"
        )
    if result.profile:
        print("  requester profile while jobs ran (py-spy, share of samples on the stack):")
        for line in result.profile:
            print(f"    {line}")
    if result.error:
        print(f"  FAILED: {result.error}")
    print(flush=True)


HEADER = (
    f"{'nodes':>6} {'gossip':>7} {'redis':>8} {'redis':>9} {'requester':>10} "
    f"{'jobs':>5} {'done':>5} {'jobs/s':>7} {'requester':>10} {'redis':>9} {'asks':>5}"
)
UNITS = (
    f"{'':>6} {'msg/s':>7} {'cmd/s':>8} {'CPU-ms/s':>9} {'CPU-ms/s':>10} "
    f"{'':>5} {'':>5} {'':>7} {'CPU-ms/job':>10} {'cmd/job':>9} {'/job':>5}"
)


def _idle_rate(result: SizeResult, what: str) -> float | None:
    idle = result.idle
    return None if idle is None else idle.per_s(float(getattr(idle, what)))


def _row(result: SizeResult) -> str:
    done = result.outcome.states.get("Completed", 0) if result.outcome else 0
    asks = result.tally["asks"] / result.jobs if result.jobs else None
    return (
        f"{result.nodes:>6} {result.nodes / result.heartbeat_s:>7.0f} "
        f"{_num(_idle_rate(result, 'redis_commands'), 0):>8} "
        f"{_num(_idle_rate(result, 'redis_ms')):>9} "
        f"{_num(_idle_rate(result, 'requester_ms')):>10} "
        f"{result.jobs:>5} {done:>5} {_num(result.throughput):>7} "
        f"{_num(result.scheduling_ms_per_job, 2):>10} "
        f"{_num(result.redis_commands_per_job):>9} {_num(asks, 2):>5}"
    )


def print_summary(results: Sequence[SizeResult], target: float) -> None:
    if not results:
        return
    print(f"gossip: idle, heartbeat {results[0].heartbeat_s:g}s for every size; "
          "scheduling: per job, idle gossip taken out")  # fmt: skip
    print(HEADER)
    print(UNITS)
    for result in results:
        print(_row(result))
    measured = [r for r in results if r.scheduling_ms_per_job and not r.error]
    if len(measured) < 2:
        print("ratio: needs two sizes that completed")
        return
    small = min(measured, key=lambda r: r.nodes)
    large = max(measured, key=lambda r: r.nodes)
    small_ms = small.scheduling_ms_per_job or 0.0
    large_ms = large.scheduling_ms_per_job or 0.0
    ratio = large_ms / small_ms
    verdict = "met" if ratio <= target else "not met"
    print(
        f"scheduling cost per job at {large.nodes} nodes / at {small.nodes} nodes: "
        f"{large_ms:.2f} / {small_ms:.2f} CPU-ms = {ratio:.2f}x "
        f"(target <= {target:g}x: {verdict})"
    )
