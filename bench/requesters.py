"""Jobs/s with 1, 2 and 3 requesters sharing one PostgreSQL job store, next to 1 requester
on its own SQLite store, each as separate OS processes on one Redis with the same compute
nodes. Prints figures; asserts nothing.

    python -m bench.requesters                      # 1,000 noop jobs per setup
    python -m bench.requesters --jobs 300 --compute-nodes 3

Jobs are PUT round-robin to the requesters' APIs from client threads, and waited for on the
first requester's list (on a shared store every requester lists every job). Throughput: jobs
/ (last completion - first submission), from the jobs' own CreateTime and ModifyTime.
PostgreSQL is Debian's, started on a free loopback port as the tests start it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench._bacalao import NODES, Runner, job_body
from bench._measure import throughput
from bench._procs import (
    LOOPBACK,
    Processes,
    Started,
    executable,
    free_port,
    start_redis,
    wait_until,
)
from protocol.admission import generate_token
from tests.support.postgres import postgres_server

SETUPS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.requesters", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000, help="noop jobs per setup")
    parser.add_argument("--compute-nodes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="client threads submitting")
    parser.add_argument("--timeout-s", type=float, default=600)
    return parser.parse_args(argv)


def connected(api: str, wanted: int) -> bool | None:
    try:
        nodes = httpx.get(api + NODES, timeout=5).json()["Nodes"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    up = [n for n in nodes if n["Info"]["NodeType"] == "Compute" and n["Connection"] == "CONNECTED"]
    return True if len(up) >= wanted else None


def run_setup(
    procs: Processes, work: Path, broker: str, store: str, requesters: int, args: argparse.Namespace
) -> float | None:
    """Start the nodes of one setup, run the jobs, stop the nodes; jobs/s."""
    token = generate_token()
    common = ["serve", "--broker", broker, "--log-level", "warning", "--cluster-token", token]
    shared = ["--store", store] if store else []
    started: list[Started] = []
    apis: list[str] = []
    for n in range(requesters):
        port = free_port()
        argv = [executable("bacalao"), *common, "--node-type", "requester", "--name", f"r{n}"]
        argv += ["--api-port", str(port), "--data-dir", str(work / f"r{n}"), *shared]
        started.append(procs.start(f"r{n}", argv))
        apis.append(f"http://{LOOPBACK}:{port}")
    for n in range(args.compute_nodes):
        argv = [executable("bacalao"), *common, "--node-type", "compute", "--name", f"c{n}"]
        argv += ["--data-dir", str(work / f"c{n}"), "--local-publisher-port", str(free_port())]
        started.append(procs.start(f"c{n}", argv))
    try:
        for api in apis:
            wait_until(
                lambda api=api: connected(api, args.compute_nodes),  # type: ignore[misc]
                what="compute nodes connected",
                timeout_s=60,
                watch=started,
                interval_s=0.2,
            )
        runners = [Runner(api, threads=args.threads) for api in apis]
        label = f"r{requesters}-{store[:4] or 'sqlite'}"
        body = job_body("noop", label)
        turn = itertools.cycle(runners)
        with ThreadPoolExecutor(args.threads) as pool:
            ids = list(
                pool.map(lambda runner: runner.submit(body), [next(turn) for _ in range(args.jobs)])
            )
        submitted = sum(1 for job_id in ids if job_id)
        ended = runners[0].wait_labelled(label, submitted, time.monotonic() + args.timeout_s)
        for runner in runners:
            runner.close()
        if len(ended) < submitted:
            print(f"  ({submitted - len(ended)} of {submitted} jobs did not end)", file=sys.stderr)
        first = min((end.create_ns for end in ended.values()), default=0)
        last = max((end.modify_ns for end in ended.values()), default=0)
        return throughput(len(ended), first, last)
    finally:
        procs.stop(*(process.name for process in reversed(started)))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-requesters-") as tmp, postgres_server() as pg:
        work = Path(tmp)
        procs = Processes(work)
        port = free_port()
        server, _ = start_redis(procs, port)
        results: list[tuple[str, int, float | None]] = []
        try:
            for index, (kind, requesters) in enumerate(SETUPS):
                store = pg.create_database() if kind == "postgresql" else ""
                broker = f"redis://{LOOPBACK}:{port}/{index}"
                print(f"[{kind} x {requesters}] {args.jobs} noop jobs ...", file=sys.stderr)
                rate = run_setup(procs, work / f"s{index}", broker, store, requesters, args)
                results.append((kind, requesters, rate))
        finally:
            procs.stop(server.name)
    base = results[0][2]
    print(f"{args.jobs} noop jobs back to back, {args.compute_nodes} compute nodes, one Redis")
    print(f"{'store':<12}{'requesters':>11}{'jobs/s':>9}{'vs SQLite x1':>14}")
    for kind, requesters, rate in results:
        shown = f"{rate:.0f}" if rate else "-"
        ratio = f"{rate / base:.2f}" if rate and base else "-"
        print(f"{kind:<12}{requesters:>11}{shown:>9}{ratio:>14}")


if __name__ == "__main__":
    main()
