"""Dispatch cost of bacalao next to Celery, on one Redis, each as separate OS processes.

Starts redis-server on a free loopback port, then a requester and 2 compute nodes
(``bacalao serve``), runs noop jobs and a small wasm job through the HTTP API, stops them,
starts 2 solo Celery workers (``bench.celery_app``: an echo task, a /bin/true task) on the
same Redis (another db), and measures the same things. Prints figures; asserts nothing.

    python -m bench.dispatch                          # 50, 1,000 and 10,000 jobs (slow today)
    python -m bench.dispatch --sizes 20,100 --sequential 20 --skip-wasm

Throughput: jobs / (last completion - first submission), from the requester's CreateTime and
ModifyTime (bacalao) or the client's send time and the result's date_done (Celery). Latency:
jobs one at a time, each submitted once the previous one has ended.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import redis

from bench import _bacalao, _celery
from bench._measure import Idle, Outcome, Phase, Snapshot, idle_traffic, measure, snapshotter
from bench._procs import (
    LOOPBACK,
    TICK_MS,
    Processes,
    Started,
    free_port,
    interruptible,
    start_redis,
    uninterrupted,
)
from bench._report import kind_table, number

KINDS = {"noop": "noop jobs (celery: echo task)", "wasm": "wasm hello.wat (celery: /bin/true)"}
IDLE_WINDOW_S = 3.0
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--sizes", default="50,1000,10000", help="jobs per back-to-back phase, comma-separated")
    add("--sequential", type=int, default=100, help="jobs in the latency phase (0: none)")
    add("--warmup", type=int, default=3, help="unmeasured sequential jobs before each kind")
    add("--skip-wasm", action="store_true", help="noop jobs only")
    add("--skip-celery", action="store_true", help="bacalao only")
    add("--skip-bacalao", action="store_true", help="Celery only")
    add("--threads", type=int, default=4, help="client threads submitting bacalao jobs")
    add("--poll-ms", type=float, default=500, help="interval of the job list polls")
    add("--timeout-per-job", type=float, default=0.25, help="phase deadline: 60 s + this x jobs")
    add("--max-phase-s", type=float, default=600, help="phase deadline at most (then: a note)")
    add("--compute-nodes", type=int, default=2, help="compute nodes, and Celery workers")
    add("--limit-total-cpu", default="", help="passed to the compute nodes (default: theirs)")
    add("--log-level", default="info", help="log level of the bacalao nodes")
    add("--insecure", action="store_true", help="bacalao nodes unsigned (what signing costs)")
    add("--keep-dir", type=Path, help="keep data and logs in this directory")
    args = parser.parse_args(argv)
    args.size_list = [int(size) for size in args.sizes.split(",") if size.strip()]
    args.kinds = [kind for kind in KINDS if not (kind == "wasm" and args.skip_wasm)]
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _phase_line(phase: Phase) -> str:
    outcome = phase.outcome
    speed = f"{number(outcome.throughput)} jobs/s" if outcome.throughput is not None else ""
    if outcome.latencies_ms:
        speed = f"p50 {number(phase.percentile(50))} ms"
    cost = number(phase.per_job(phase.cpu_ms))
    return (
        f"[{phase.system} {phase.kind} {phase.label}] {speed}, {outcome.failed} failed, "
        f"{cost} CPU-ms/job, {phase.wall_s:.1f} s {outcome.note}"
    ).rstrip()


class Bench:
    """One run: the processes it started, the phases measured so far."""

    def __init__(self, args: argparse.Namespace, procs: Processes, work: Path) -> None:
        self.args = args
        self.procs = procs
        self.work = work
        self.phases: list[Phase] = []
        self.idle: dict[str, Idle] = {}
        self.redis_version = ""
        self.store_seen: bool | None = None
        self.redis_port = 0

    def timeout_s(self, jobs: int) -> float:
        """How long a phase of ``jobs`` may take to finish once they are submitted."""
        return min(float(self.args.max_phase_s), 60.0 + float(self.args.timeout_per_job) * jobs)

    def start_redis(self) -> tuple[Started, redis.Redis]:
        self.redis_port = free_port()
        server, client = start_redis(self.procs, self.redis_port)
        self.redis_version = str(client.info("server")["redis_version"])
        return server, client

    def broker(self, db: int) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/{db}"

    def phase(
        self,
        snap: Callable[[], Snapshot],
        system: str,
        kind: str,
        label: str,
        run: Callable[[], Outcome],
    ) -> None:
        phase = measure(snap, system, kind, label, run)
        self.phases.append(phase)
        progress(_phase_line(phase))

    def run_bacalao(self, server: Started, client: redis.Redis) -> None:
        options = _bacalao.ClusterOptions(
            compute_nodes=self.args.compute_nodes,
            log_level=self.args.log_level,
            limit_total_cpu=self.args.limit_total_cpu,
            insecure=self.args.insecure,
        )
        poll_s = self.args.poll_ms / 1000
        progress("starting a requester and compute nodes ...")
        side = _bacalao.Side(
            self.procs,
            self.broker(0),
            self.work,
            options,
            lambda api: _bacalao.Runner(api, threads=self.args.threads, poll_s=poll_s),
        )
        try:
            snap = snapshotter(
                lambda: (*side.cluster.processes, server),
                client,
                lambda: side.runner.store_counters(),
            )
            self.store_seen = side.runner.store_counters() is not None
            self.idle["bacalao"] = idle_traffic(snap, IDLE_WINDOW_S)
            for kind in self.args.kinds:
                self.bacalao_kind(side, snap, kind)
        finally:
            side.stop()

    def bacalao_kind(self, side: _bacalao.Side, snap: Callable[[], Snapshot], kind: str) -> None:
        args = self.args
        if args.warmup:
            side.runner.sequential(kind, args.warmup, f"{kind}-warmup", self.timeout_s(1))
        for size in args.size_list:
            label = f"{kind}-{size}-{len(self.phases)}"
            run = partial(side.runner.back_to_back, kind, size, label, self.timeout_s(size))
            self.phase(snap, "bacalao", kind, f"{size} back to back", run)
            if self.phases[-1].outcome.timed_out:
                progress("restarting the cluster, so that the jobs left do not slow what follows")
                side.restart()
        if args.sequential:
            label = f"{kind}-sequential-{len(self.phases)}"
            run = partial(side.runner.sequential, kind, args.sequential, label, self.timeout_s(1))
            self.phase(snap, "bacalao", kind, f"{args.sequential} sequential", run)

    def run_celery(self, server: Started, client: redis.Redis) -> None:
        url = self.broker(1)
        module = _celery.load_app(url)
        progress("starting celery workers ...")
        workers = _celery.start_workers(self.procs, module, url, count=self.args.compute_nodes)
        try:
            snap = snapshotter(lambda: (*workers, server), client)
            self.idle["celery"] = idle_traffic(snap, IDLE_WINDOW_S)
            runner = _celery.Runner(module)
            for kind in self.args.kinds:
                self.celery_kind(runner, snap, kind)
        finally:
            self.procs.stop(*(w.name for w in workers))

    def celery_kind(self, runner: _celery.Runner, snap: Callable[[], Snapshot], kind: str) -> None:
        args = self.args
        if args.warmup:
            runner.sequential(kind, args.warmup, self.timeout_s(1))
        for size in args.size_list:
            run = partial(runner.back_to_back, kind, size, self.timeout_s(size))
            self.phase(snap, "celery", kind, f"{size} back to back", run)
        if args.sequential:
            run = partial(runner.sequential, kind, args.sequential, self.timeout_s(1))
            self.phase(snap, "celery", kind, f"{args.sequential} sequential", run)

    def run(self) -> None:
        server, client = self.start_redis()
        try:
            if not self.args.skip_bacalao:
                self.run_bacalao(server, client)
            if self.args.skip_celery:
                progress("celery: skipped (--skip-celery)")
            elif not _celery.available():
                progress("celery: not installed, skipped (pip install -e '.[bench]')")
            else:
                self.run_celery(server, client)
        finally:
            client.close()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def header(bench: Bench) -> list[str]:
    nproc = len(os.sched_getaffinity(0))
    nodes = bench.args.compute_nodes
    lines = [
        f"machine: {nproc} CPUs ({_cpu_model()}), {platform.system()} {platform.release()}",
        f"versions: bacalao {_version('bacalao')} (git {_git()}), Python "
        f"{platform.python_version()}, kombu {_version('kombu')}, celery {_version('celery')}, "
        f"redis-server {bench.redis_version or '?'}, redis-py {_version('redis')}",
        f"setup: one redis-server; 1 requester + {nodes} compute nodes (redis db 0), then "
        f"{nodes} solo Celery workers (db 1), never both at once",
    ]
    for system, idle in bench.idle.items():
        lines.append(
            f"idle, {system}: {idle.cpu_ms_per_s:.0f} CPU-ms/s, {idle.commands_per_s:.1f} redis "
            f"commands/s, {idle.reads_per_s:.1f} round trips/s (included in every phase)"
        )
    if bench.store_seen is False:
        lines.append("SQLite: n/a (the requester has no GET /api/v1/agent/debug)")
    lines += [
        "per job: everything the started processes (nodes, workers, redis) did during the phase,",
        "  gossip and heartbeats included, and the bench's polling of the API or Celery results;",
        f"  CPU from /proc/<pid>/stat ({TICK_MS:g} ms ticks: coarse for short phases);",
        "  round trip = a request Redis read (a MULTI...EXEC block counts once);",
        f"  bacalao waits by listing its jobs, {_bacalao.PAGE} a page, every "
        f"{bench.args.poll_ms:g} ms (latency: a GET every 20 ms);",
        "  celery waits on result.get()",
        "  ratio = bacalao / celery",
    ]
    return lines


def report(bench: Bench) -> str:
    lines = header(bench)
    for kind, title in KINDS.items():
        table = kind_table(kind, title, bench.phases)
        if table:
            lines += ["", *table]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code = 0
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, interruptible():
        work = args.keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        procs = Processes(work)
        bench = Bench(args, procs, work)
        try:
            bench.run()
        except KeyboardInterrupt:
            progress("interrupted: stopping what was started")
            code = 130
        except (RuntimeError, TimeoutError, OSError) as exc:
            progress(f"failed: {exc}")
            for process in procs.started:
                progress(f"--- {process.name} ({process.log}), last lines:\n{process.log_tail()}")
            code = 1
        finally:
            with uninterrupted():
                procs.stop()
        print(report(bench), flush=True)
        if args.keep_dir:
            progress(f"data and logs kept in {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
