"""What ``PUT /api/v1/orchestrator/jobs`` costs, and whether reads stay flat as jobs pile up.

Starts ``bacalao serve --node-type requester`` (memory broker, no compute nodes, so jobs stay
Pending) as its own process, pinned to one core (the client gets the others; ``--no-pin``
leaves both to the scheduler), PUTs noop jobs to it from several client threads over
keep-alive connections, and prints:

- PUT/s, client latency p50/p99, and the server's CPU-ms per PUT (from /proc/<pid>/stat: the
  whole process, of it the kernel's share, then by thread). "On one core" is about this
  figure: on a small machine the client's own CPU can be what caps PUT/s;
- the latency of sequential PUTs (one client, nothing else in flight);
- GET of one job and of one page of the job list, with 10 and with many jobs stored, to show
  whether they cost O(1) and O(page) or grow with the jobs stored.

The client is a bare HTTP/1.1 keep-alive loop over a socket, so that it takes as little CPU
from the server's side of the measurement as it can. Prints figures; asserts nothing::

    python -m bench.api_put --jobs 10000 --clients 4 [--py-spy /tmp/put.svg]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

JOBS = "/api/v1/orchestrator/jobs"
NOOP_JOB = json.dumps(
    {
        "Job": {
            "Type": "batch",
            "Count": 1,
            "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}],
        }
    }
).encode()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READ_SAMPLES = 300


class Connection:
    """One keep-alive HTTP/1.1 connection: a request out, its response (status, body) back."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            + ("Content-Type: application/json\r\n" if body else "")
            + "\r\n"
        )
        self._sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        header, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(self._buffer) < length:
            self._fill()
        payload, self._buffer = self._buffer[:length], self._buffer[length:]
        return status, payload

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk


@dataclass
class Cpu:
    """CPU seconds of a process, and of each of its threads, at one moment."""

    total: float
    system: float = 0.0  # of which in the kernel
    threads: dict[int, float] = field(default_factory=dict)


def _ticks(stat_path: Path) -> tuple[float, float]:
    """(user + system, system) CPU seconds from a /proc stat file."""
    # the command name (field 2) may hold spaces; the fields after its ')' are fixed
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
    return user + system, system


def cpu_of(pid: int) -> Cpu:
    threads: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            threads[int(task.name)] = _ticks(task / "stat")[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended while we looked
    total, system = _ticks(Path(f"/proc/{pid}/stat"))
    return Cpu(total, system, threads)


@contextmanager
def requester(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``bacalao serve --node-type requester`` on ``port``, ready to answer, then stopped."""
    log = (data_dir / "requester.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "cli.main", "serve", "--node-type", "requester",
            "--api-port", str(port), "--data-dir", str(data_dir), "--log-level", "info",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = Connection(port)
                status, _ = conn.request("GET", "/api/v1/agent/alive")
                conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the requester did not start; see {log.name}")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of the server's threads (from ``py-spy dump``; empty without it)."""
    try:
        dump = subprocess.run(
            ["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names: dict[int, str] = {}
    for line in dump.splitlines():
        if line.startswith("Thread "):
            tid, _, rest = line.removeprefix("Thread ").partition(" ")
            if tid.isdigit():
                names[int(tid)] = rest.split('"')[1] if '"' in rest else rest
    return names


def pin(server_pid: int, *, enabled: bool) -> str:
    """Give the server one core of its own (all its threads) and this client the others, so
    that "on one core" is literal and the figures do not move with where threads land."""
    cores = sorted(os.sched_getaffinity(0))
    if not enabled or len(cores) < 2:
        return f"cores={len(cores)} server and client unpinned"
    server_core, client_cores = cores[-1], set(cores[:-1])
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {server_core})
    os.sched_setaffinity(0, client_cores)
    return (
        f"cores={len(cores)} server pinned to core {server_core}, client to {sorted(client_cores)}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def put_jobs(port: int, jobs: int, clients: int) -> tuple[float, list[float], list[str]]:
    """PUT ``jobs`` noop jobs over ``clients`` connections: (seconds, latencies, job IDs)."""
    latencies: list[float] = []
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    shares = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(share: int) -> None:
        conn = Connection(port)
        mine: list[float] = []
        my_ids: list[str] = []
        start.wait()
        try:
            for _ in range(share):
                began = time.perf_counter()
                status, body = conn.request("PUT", JOBS, NOOP_JOB)
                mine.append(time.perf_counter() - began)
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                    return
                my_ids.append(json.loads(body)["JobID"])
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                ids.extend(my_ids)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"a PUT failed: {errors[0]}")
    return elapsed, latencies, ids


def timed_gets(port: int, path: str, samples: int = READ_SAMPLES) -> list[float]:
    """``samples`` GETs of ``path`` one after another: their latencies in seconds."""
    conn = Connection(port)
    try:
        times: list[float] = []
        for _ in range(samples):
            began = time.perf_counter()
            status, body = conn.request("GET", path)
            times.append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return times
    finally:
        conn.close()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def reads(port: int, job_id: str, pid: int, label: str) -> None:
    for name, path in (
        ("get_job", f"{JOBS}/{job_id}"),
        ("list_page_10_all_namespaces", f"{JOBS}?limit=10"),
        ("list_page_10_namespace_default", f"{JOBS}?limit=10&namespace=default"),
        ("list_page_100_namespace_default", f"{JOBS}?limit=100&namespace=default"),
    ):
        before = cpu_of(pid).total
        times = timed_gets(port, path)
        cpu = (cpu_of(pid).total - before) / len(times)
        print(
            f"{label} {name}: p50_ms={ms(statistics.median(times))} "
            f"p99_ms={ms(quantile(times, 0.99))} server_cpu_ms={ms(cpu)}"
        )


@contextmanager
def py_spy(pid: int, output: str | None) -> Iterator[None]:
    if not output:
        yield
        return
    form = ["--format", "raw"] if output.endswith(".txt") else []  # collapsed stacks
    command = ["py-spy", "record", "--pid", str(pid), "--output", output, "--rate", "250"]
    spy = subprocess.Popen(
        [*command, "--gil", *form], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        print(f"profile: {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs PUT in the timed phase")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--sequential", type=int, default=300, help="one-at-a-time PUTs")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler place the server (default: it gets one core, the client the rest)",
    )
    parser.add_argument(
        "--py-spy",
        default="",
        help="py-spy profile of the PUTs, threads holding the GIL (.svg; .txt: raw stacks)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        port = free_port()
        with requester(Path(tmp), port) as server:
            print(pin(server.pid, enabled=not args.no_pin))
            _, _, first = put_jobs(port, 10, 1)
            reads(port, first[0], server.pid, "jobs_stored=10")

            seq_s, seq_lat, _ = put_jobs(port, args.sequential, 1)
            print(
                f"sequential PUT x{args.sequential}: p50_ms={ms(statistics.median(seq_lat))} "
                f"p99_ms={ms(quantile(seq_lat, 0.99))} put_per_s={args.sequential / seq_s:.0f}"
            )

            with py_spy(server.pid, args.py_spy):
                before = cpu_of(server.pid)
                elapsed, latencies, _ = put_jobs(port, args.jobs, args.clients)
                after = cpu_of(server.pid)
            server_ms = (after.total - before.total) / args.jobs
            print(
                f"concurrent PUT x{args.jobs} over {args.clients} clients: "
                f"put_per_s={args.jobs / elapsed:.0f} p50_ms={ms(statistics.median(latencies))} "
                f"p99_ms={ms(quantile(latencies, 0.99))} server_cpu_ms_per_put={ms(server_ms)} "
                f"(kernel {ms((after.system - before.system) / args.jobs)}) "
                f"server_cpu_share={(after.total - before.total) / elapsed:.2f}_cores"
            )
            names = thread_names(server.pid)
            by_name: dict[str, float] = {}
            for tid, spent in after.threads.items():
                name = names.get(tid, "other").replace(" ", "_")
                by_name[name] = by_name.get(name, 0.0) + spent - before.threads.get(tid, 0.0)
            busiest = sorted(by_name.items(), key=lambda item: -item[1])[:4]
            shown = " ".join(f"{name}={ms(spent / args.jobs)}" for name, spent in busiest)
            print(f"  server threads by name, cpu_ms_per_put: {shown}")

            stored = 10 + args.sequential + args.jobs
            reads(port, first[0], server.pid, f"jobs_stored={stored}")


if __name__ == "__main__":
    main()
