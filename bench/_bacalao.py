"""The bacalao side: a requester and compute nodes as separate processes, jobs over HTTP."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._measure import Outcome, StoreCounters, throughput
from bench._procs import LOOPBACK, Processes, Started, executable, free_port, wait_until
from cli.jobspec import WasmRunSpec, build_wasm_job
from protocol.admission import generate_token

JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
DEBUG = "/api/v1/agent/debug"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
PAGE = 100  # jobs per list request while waiting (~16 ms of requester CPU today)
HELLO_WAT = Path(__file__).resolve().parents[1] / "examples" / "wasm" / "hello.wat"
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ClusterOptions:
    compute_nodes: int = 2
    log_level: str = "info"
    limit_total_cpu: str = ""  # "" leaves the node's default (80% of the cores)
    ready_timeout_s: float = 60.0
    insecure: bool = False  # unsigned messages: what signing costs, by difference


@dataclass(frozen=True)
class Cluster:
    api: str
    requester: Started
    computes: tuple[Started, ...]

    @property
    def processes(self) -> tuple[Started, ...]:
        return (self.requester, *self.computes)


def start_cluster(procs: Processes, broker: str, data: Path, options: ClusterOptions) -> Cluster:
    """Start the nodes and wait until the requester lists every compute node as connected."""
    exe = executable("bacalao")
    common = ["serve", "--broker", broker, "--log-level", options.log_level]
    # Separate data dirs: the nodes are given the cluster's token, as on separate hosts.
    common += ["--insecure"] if options.insecure else ["--cluster-token", generate_token()]
    api_port = free_port()
    requester = procs.start(
        "requester",
        [
            *(exe, *common, "--node-type", "requester", "--name", "requester"),
            *("--api-port", str(api_port), "--data-dir", str(data / "requester")),
        ],
    )
    limits = ["--limit-total-cpu", options.limit_total_cpu] if options.limit_total_cpu else []
    computes = tuple(
        procs.start(
            name,
            [
                *(exe, *common, "--node-type", "compute", "--name", name, *limits),
                *("--data-dir", str(data / name), "--local-publisher-port", str(free_port())),
            ],
        )
        for name in (f"c{i + 1}" for i in range(options.compute_nodes))
    )
    cluster = Cluster(f"http://{LOOPBACK}:{api_port}", requester, computes)
    with httpx.Client(base_url=cluster.api, timeout=5) as client:
        wait_until(
            lambda: _enough_nodes(client, options.compute_nodes),
            what=f"{options.compute_nodes} compute nodes connected to the requester",
            timeout_s=options.ready_timeout_s,
            watch=cluster.processes,
            interval_s=0.2,
        )
    return cluster


def _enough_nodes(client: httpx.Client, wanted: int) -> bool | None:
    try:
        nodes = client.get(NODES).json()["Nodes"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    connected = [
        node
        for node in nodes
        if node["Info"]["NodeType"] in ("Compute", "Hybrid") and node["Connection"] == "CONNECTED"
    ]
    return True if len(connected) >= wanted else None


@functools.cache
def _wasm_job() -> dict[str, Any]:
    """hello.wat, compiled and inlined the way ``bacalao wasm run`` does it."""
    spec = WasmRunSpec(module=str(HELLO_WAT), args=("bench",), publisher="noop")
    return build_wasm_job(spec).job.to_wire()


def job_body(kind: str, label: str) -> bytes:
    """The PUT body of one job of ``kind`` (noop or wasm), labelled ``bench=<label>``."""
    if kind == "wasm":
        job = dict(_wasm_job())
    else:
        task = {"Name": "t", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}
        job = {"Type": "batch", "Count": 1, "Tasks": [task]}
    job["Labels"] = {"bench": label}
    return json.dumps({"Job": job}).encode()


@dataclass(frozen=True)
class Ended:
    state: str
    create_ns: int
    modify_ns: int


def _ended(job: dict[str, Any]) -> Ended | None:
    state = str(job["State"]["StateType"])
    if state not in TERMINAL:
        return None
    return Ended(state, int(job["CreateTime"]), int(job["ModifyTime"]))


class Runner:
    """Submits jobs to the requester and waits for them."""

    def __init__(self, api: str, *, threads: int = 4, poll_s: float = 0.5) -> None:
        limits = httpx.Limits(max_connections=threads + 2, max_keepalive_connections=threads + 2)
        self.client = httpx.Client(base_url=api, timeout=60, limits=limits)
        self.threads = threads
        self.poll_s = poll_s

    def close(self) -> None:
        self.client.close()

    def store_counters(self) -> StoreCounters | None:
        """The requester's SQLite counters; None while it does not expose them."""
        try:
            response = self.client.get(DEBUG)
            if response.status_code != 200:
                return None
            store = response.json()["Store"]
            return StoreCounters(int(store["Transactions"]), int(store["Statements"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def submit(self, body: bytes) -> str | None:
        try:
            response = self.client.put(JOBS, content=body, headers=_JSON)
        except httpx.HTTPError:
            return None
        return str(response.json()["JobID"]) if response.status_code == 200 else None

    def back_to_back(self, kind: str, jobs: int, label: str, timeout_s: float) -> Outcome:
        """``jobs`` jobs PUT as fast as ``threads`` clients can, then waited for."""
        body = job_body(kind, label)
        pool = ThreadPoolExecutor(self.threads)
        started = time.monotonic()
        try:
            submitted = list(pool.map(lambda _: self.submit(body), range(jobs)))
        finally:  # on Ctrl-C, submit no more
            pool.shutdown(cancel_futures=True)
        submit_s = time.monotonic() - started
        ids = [job_id for job_id in submitted if job_id]
        ended = self.wait_labelled(label, len(ids), time.monotonic() + timeout_s)
        completed = sum(1 for end in ended.values() if end.state == "Completed")
        notes = [f"{jobs - len(ids)} submissions refused"] if len(ids) < jobs else []
        if len(ended) < len(ids):
            notes.append(
                f"{len(ids) - len(ended)} not finished in {timeout_s:g} s (throughput: of those "
                f"that did; per-job figures: over all {jobs})"
            )
        first = min((end.create_ns for end in ended.values()), default=0)
        last = max((end.modify_ns for end in ended.values()), default=0)
        return Outcome(
            jobs=jobs,
            failed=jobs - completed,
            timed_out=len(ended) < len(ids),
            throughput=throughput(len(ended), first, last),
            submit_rate=jobs / submit_s if submit_s > 0 else None,
            note="; ".join(notes),
        )

    def wait_labelled(self, label: str, wanted: int, deadline: float) -> dict[str, Ended]:
        """Poll the list of the jobs labelled ``bench=<label>`` until ``wanted`` have ended.

        Pages come oldest first; a full page whose jobs have all ended is never read again
        (the next poll starts at its NextToken), so each poll reads about one page."""
        ended: dict[str, Ended] = {}
        start = ""
        while len(ended) < wanted and time.monotonic() < deadline:
            token = start
            while True:
                params = {"labels": f"bench={label}", "limit": str(PAGE), "next_token": token}
                page = self.client.get(JOBS, params=params).json()
                items, token = page["Items"], str(page["NextToken"])
                found = {str(job["ID"]): _ended(job) for job in items}
                ended.update((job_id, end) for job_id, end in found.items() if end is not None)
                if not token or None in found.values():
                    break
                start = token  # every job on this page has ended
            if len(ended) < wanted:
                time.sleep(self.poll_s)
        return ended

    def sequential(self, kind: str, jobs: int, label: str, timeout_s: float) -> Outcome:
        """One job at a time: submit, wait until it has ended, next. Latency from the
        requester's own CreateTime and ModifyTime."""
        body = job_body(kind, label)
        latencies: list[float] = []
        failed = 0
        for _ in range(jobs):
            job_id = self.submit(body)
            end = self.wait_one(job_id, time.monotonic() + timeout_s) if job_id else None
            if end is None or end.state != "Completed":
                failed += 1
                continue
            latencies.append((end.modify_ns - end.create_ns) / 1e6)
        return Outcome(jobs=jobs, failed=failed, latencies_ms=latencies)

    def wait_one(self, job_id: str, deadline: float, poll_s: float = 0.02) -> Ended | None:
        while time.monotonic() < deadline:
            end = _ended(self.client.get(f"{JOBS}/{job_id}").json()["Job"])
            if end is not None:
                return end
            time.sleep(poll_s)
        return None


class Side:
    """A running cluster and a client of it; :meth:`restart` replaces both with fresh ones
    (new data dirs), so a phase that timed out leaves no backlog to the next."""

    def __init__(
        self,
        procs: Processes,
        broker: str,
        work: Path,
        options: ClusterOptions,
        make_runner: Callable[[str], Runner],
    ) -> None:
        self.procs, self.broker, self.work, self.options = procs, broker, work, options
        self.make_runner = make_runner
        self.generation = 0
        self.cluster, self.runner = self._start()

    def _start(self) -> tuple[Cluster, Runner]:
        self.generation += 1
        data = self.work / f"cluster-{self.generation}"
        cluster = start_cluster(self.procs, self.broker, data, self.options)
        return cluster, self.make_runner(cluster.api)

    def stop(self) -> None:
        self.runner.close()
        self.procs.stop(*(process.name for process in self.cluster.processes))

    def restart(self) -> None:
        self.stop()
        self.cluster, self.runner = self._start()
