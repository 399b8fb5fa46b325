"""Latency and throughput of jobs through an embedded devstack (memory bus, noop executor).

Prints figures; asserts nothing. ``python -m bench.bench_jobs --jobs 200 --compute-nodes 3``
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from cli.devstack import embedded

TERMINAL = {"Completed", "Failed", "Stopped"}


def noop_job(count: int) -> dict[str, object]:
    return {
        "Count": count,
        "Tasks": [{"Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}],
    }


def run_one(client: httpx.Client, count: int, poll_s: float) -> float:
    """Submit one job and wait for it; its latency from the requester's own timestamps
    (created -> last modified), so the client's polling interval does not count."""
    job_id = client.put("/api/v1/orchestrator/jobs", json={"Job": noop_job(count)}).json()["JobID"]
    while True:
        job = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
        state = job["State"]
        if state["StateType"] in TERMINAL:
            if state["StateType"] != "Completed":
                raise RuntimeError(f"job {job_id} ended {state}")
            return float(job["ModifyTime"] - job["CreateTime"]) / 1e9
        time.sleep(poll_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--compute-nodes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--poll-ms", type=float, default=50, help="how often each client asks about its job"
    )
    args = parser.parse_args()
    with embedded(compute_nodes=args.compute_nodes) as stack:
        base = f"http://127.0.0.1:{stack.api_port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            poll_s = args.poll_ms / 1000
            run_one(client, args.count, poll_s)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                runs = pool.map(lambda _: run_one(client, args.count, poll_s), range(args.jobs))
                latencies = list(runs)
            elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"jobs={args.jobs} count={args.count} compute_nodes={args.compute_nodes} "
        f"concurrency={args.concurrency} poll_ms={args.poll_ms:g}"
    )
    print(f"throughput_jobs_per_s={args.jobs / elapsed:.1f}")
    print(f"latency_p50_ms={statistics.median(latencies) * 1000:.1f}")
    print(f"latency_p95_ms={latencies[int(len(latencies) * 0.95) - 1] * 1000:.1f}")


if __name__ == "__main__":
    main()
