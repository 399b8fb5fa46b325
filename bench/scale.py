"""How the requester's costs grow with the cluster: one requester, 10 to 1,000 compute nodes.

``python -m bench.scale --nodes 10,100,1000 --jobs 300``

Starts its own redis-server on a free loopback port. For each cluster size it starts a fresh
requester (``bacalao serve --node-type requester``, its own process and data dir) and
simulated compute nodes, many per process over one kombu connection each
(``bench.scale_worker``), that gossip and bid like real ones and run noop jobs instantly.
Once the requester lists every node it measures, while idle, the gossip cost per second
(Redis commands/s and CPU, requester CPU-ms/s); then submits noop jobs back to back, waits
until all are terminal and reports the scheduling cost per job: the requester's CPU-ms over
that time, minus its idle gossip cost over the same wall time, per job. Every size uses the
same heartbeat interval, so gossip costs compare. Prints figures; asserts nothing.

Target (issue 10): scheduling cost per job at 1,000 nodes <= 1.5x that at 10.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import scale_api as api
from bench.scale_procs import (
    Child,
    RedisServer,
    cpu_ms,
    ensure_alive,
    free_port,
    repo_root,
    requester_argv,
    start,
    wait_until,
    worker_argv,
)
from bench.scale_profile import start_profile, stop_profile, summarize
from bench.scale_report import Rates, SizeResult, print_size, print_summary
from protocol.admission import generate_token

TARGET_RATIO = 1.5
CLUSTER_TOKEN = generate_token()  # the requester and every simulated node share it


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--nodes", default="10,100,1000", help="cluster sizes, comma-separated")
    add("--jobs", type=int, default=300, help="noop jobs per cluster size")
    add("--heartbeat", type=float, default=5.0, help="gossip interval (s), same for all sizes")
    add("--idle", type=float, default=10.0, help="idle gossip window (s)")
    add("--nodes-per-process", type=int, default=500)
    add("--node-cpu", default="1.6", help="CPU per simulated node (0.1 per noop job)")
    add("--concurrency", type=int, default=4, help="PUTs in flight while submitting")
    add("--poll", type=float, default=0.5, help="seconds between job-list polls")
    add("--deadline", type=float, default=300.0, help="max seconds for one size's jobs")
    add("--via-exchange", action="store_true", help="nodes reply via the bprotocol exchange")
    add("--batch", action="store_true", help="nodes batch their replies (Codec.encode_many)")
    add("--hear-gossip", action="store_true", help="node processes subscribe to gossip")
    add("--profile", action="store_true", help="py-spy the requester while jobs run")
    add("--log-level", default="info", help="the requester's --log-level")
    add("--keep", action="store_true", help="keep the scratch dir (logs, job stores)")
    args = parser.parse_args(argv)
    args.sizes = [int(part) for part in str(args.nodes).split(",") if part.strip()]
    return args


@dataclass
class Sample:
    at: float
    requester_ms: float
    workers_ms: float
    redis_commands: dict[str, int]
    redis_ms: float


@dataclass
class Cluster:
    """One size's requester and workers, and how to sample their costs."""

    redis: RedisServer
    requester: Child
    client: httpx.Client
    workers: list[Child] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    def sample(self) -> Sample:
        figures = self.redis.figures()
        return Sample(
            at=time.monotonic(),
            requester_ms=cpu_ms(self.requester.pid),
            workers_ms=sum(cpu_ms(worker.pid) for worker in self.workers),
            redis_commands=figures.by_command,
            redis_ms=figures.cpu_ms,
        )

    def check(self) -> None:
        ensure_alive(self.requester)
        for worker in self.workers:
            ensure_alive(worker)


def rates(before: Sample, after: Sample) -> Rates:
    wall = max(after.at - before.at, 1e-6)
    return Rates(
        wall_s=wall,
        requester_ms=after.requester_ms - before.requester_ms,
        workers_ms=after.workers_ms - before.workers_ms,
        redis_by_command={
            name: calls - before.redis_commands.get(name, 0)
            for name, calls in after.redis_commands.items()
            if name != "info" and calls > before.redis_commands.get(name, 0)  # INFO: ours
        },
        redis_ms=after.redis_ms - before.redis_ms,
    )


def start_requester(args: argparse.Namespace, redis: RedisServer, folder: Path) -> Cluster:
    port = free_port()
    options = ["--heartbeat-interval", str(args.heartbeat), "--cluster-token", CLUSTER_TOKEN]
    options += ["--disconnect-after", str(args.heartbeat * 3), "--log-level", args.log_level]
    argv = requester_argv(redis.url, port, folder / "requester", options)
    child = start("requester", argv, folder / "requester.log", cwd=repo_root())
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    cluster = Cluster(redis, child, client)

    def alive() -> bool:
        ensure_alive(child)
        try:
            return client.get("/api/v1/agent/alive").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(alive, 60, "requester API")
    return cluster


def start_workers(args: argparse.Namespace, cluster: Cluster, size: int, folder: Path) -> None:
    me = cluster.client.get("/api/v1/agent/node").json()
    known = f"{me.get('NodeID', '')}:{me.get('BootID', '')}"
    procs = max(1, math.ceil(size / max(1, args.nodes_per_process)))
    for index in range(procs):
        share = size // procs + (1 if index < size % procs else 0)
        place = folder / f"worker-{index}"
        place.mkdir(parents=True)
        options = ["--heartbeat", str(args.heartbeat), "--cpu", args.node_cpu]
        options += ["--cluster-token", CLUSTER_TOKEN]
        options += ["--known-requester", known]
        options += ["--via-exchange"] if args.via_exchange else []
        options += ["--batch"] if args.batch else []
        options += ["--hear-gossip"] if args.hear_gossip else []
        argv = worker_argv(cluster.redis.url, share, place, options)
        cluster.workers.append(start(f"worker-{index}", argv, place / "worker.log", repo_root()))
        cluster.folders.append(place)

    def ready() -> bool:
        cluster.check()
        return all((place / "ready").exists() for place in cluster.folders)

    wait_until(ready, 60 + size * 0.05, f"{procs} node processes ready")


def join(cluster: Cluster, size: int) -> float:
    """Seconds until the requester lists every node as connected."""
    started = time.monotonic()

    def listed() -> bool:
        cluster.check()
        return api.connected_compute(cluster.client) >= size

    wait_until(listed, 60 + size * 0.12, f"requester listing {size} nodes", every_s=0.5)
    return time.monotonic() - started


def measure(args: argparse.Namespace, cluster: Cluster, size: int, result: SizeResult) -> None:
    # Warm-up, not synchronisation: let the join burst (every node's first NodeInfo, each a
    # scheduling pass) drain before the idle window.
    time.sleep(args.heartbeat)
    before = cluster.sample()
    time.sleep(args.idle)  # the measurement window
    result.idle = rates(before, cluster.sample())
    cluster.check()
    output = cluster.requester.log_path.with_name("requester-jobs.pyspy.txt")
    spy = start_profile(cluster.requester.pid, output) if args.profile else None
    try:
        before = cluster.sample()
        submitted = time.monotonic()
        ids = api.submit(cluster.client, args.jobs, args.concurrency)
        result.submit_s = time.monotonic() - submitted
        follower = api.Follower(cluster.client, ids)
        result.outcome = follower.wait(args.deadline, args.poll, cluster.check)
        result.busy = rates(before, cluster.sample())
    finally:
        if spy is not None:
            stop_profile(spy)
    if spy is not None:
        result.profile = summarize(output)


def stop_all(children: list[Child]) -> None:
    for child in children:
        child.stop()


def stop_workers(cluster: Cluster, result: SizeResult) -> None:
    stop_all(cluster.workers)
    result.add_worker_stats([place / "stats.json" for place in cluster.folders])


def run_size(args: argparse.Namespace, redis: RedisServer, size: int, scratch: Path) -> SizeResult:
    folder = scratch / f"nodes-{size}"
    folder.mkdir()
    redis.flush()  # no queues, bindings or messages of the previous size
    result = SizeResult(nodes=size, jobs=args.jobs, heartbeat_s=args.heartbeat)
    with ExitStack() as stack:
        cluster = start_requester(args, redis, folder)
        stack.callback(cluster.requester.stop)
        stack.callback(cluster.client.close)
        stack.callback(stop_all, cluster.workers)
        try:
            start_workers(args, cluster, size, folder)
            result.processes = len(cluster.workers)
            result.join_s = join(cluster, size)
            measure(args, cluster, size, result)
        except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            print(f"  requester log ({cluster.requester.log_path}):\n{cluster.requester.tail()}")
        stop_workers(cluster, result)
    return result


def interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    scratch = Path(tempfile.mkdtemp(prefix="bacalao-scale-"))
    results: list[SizeResult] = []
    try:
        redis = RedisServer.launch(scratch / "redis")
        try:
            print(f"redis-server pid {redis.child.pid} on {redis.url}; scratch {scratch}")
            for size in args.sizes:
                print(f"== {size} nodes ==", flush=True)
                results.append(run_size(args, redis, size, scratch))
                print_size(results[-1])
        finally:
            redis.stop()
    except KeyboardInterrupt:
        print("interrupted; every process started here was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print_summary(results, TARGET_RATIO)
    return 0 if all(not r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
