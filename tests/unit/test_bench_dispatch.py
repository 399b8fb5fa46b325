"""The pure helpers of bench.dispatch: counters, percentiles, job bodies, the table."""

from __future__ import annotations

import json
import os

import httpx

from bench._bacalao import Runner, job_body
from bench._measure import Outcome, Phase, RedisCounters, StoreCounters, percentile
from bench._measure import throughput as jobs_per_s
from bench._procs import cpu_ms, free_port
from bench._report import kind_table, number, top_commands


def _phase(system: str, throughput: float | None) -> Phase:
    return Phase(
        system=system,
        kind="noop",
        label="10 back to back",
        outcome=Outcome(jobs=10, throughput=throughput),
        wall_s=1.0,
        cpu_ms=50.0,
        client_cpu_ms=5.0,
        redis=RedisCounters({"brpop": 20, "lpush": 30}, 40),
        store=StoreCounters(30, 90) if system == "bacalao" else None,
    )


def test_redis_delta_leaves_out_the_later_info_read() -> None:
    before = RedisCounters({"brpop": 3, "get": 1}, 10)
    after = RedisCounters({"brpop": 5, "get": 1, "set": 2}, 15)
    delta = after.minus(before)
    assert delta.commands == {"brpop": 2, "set": 2}
    assert delta.total == 4
    assert delta.reads == 4


def test_percentiles_and_throughput() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    assert jobs_per_s(100, 0, 2_000_000_000) == 50.0
    assert jobs_per_s(0, 0, 1) is None


def test_job_bodies_carry_the_label() -> None:
    noop = json.loads(job_body("noop", "noop-10-0"))["Job"]
    assert noop["Labels"] == {"bench": "noop-10-0"}
    assert noop["Tasks"][0]["Engine"]["Type"] == "noop"
    wasm = json.loads(job_body("wasm", "wasm-10-1"))["Job"]
    source = wasm["Tasks"][0]["InputSources"][0]["Source"]
    assert source["Type"] == "inline"
    assert source["Params"]["URL"].startswith("data:application/wasm;base64,")


def test_table_has_both_systems_and_the_ratio() -> None:
    bacalao, celery = _phase("bacalao", throughput=10.0), _phase("celery", throughput=100.0)
    text = "\n".join(kind_table("noop", "noop jobs", [bacalao, celery]))
    assert "10 back to back" in text
    throughput_line = next(line for line in text.splitlines() if "throughput" in line)
    assert throughput_line.split()[-3:] == ["10", "100", "0.10"]
    sqlite_line = next(line for line in text.splitlines() if "SQLite transactions" in line)
    assert sqlite_line.split()[-3:] == ["3.00", "-", "-"]
    assert top_commands(bacalao) == "lpush 3.00, brpop 2.00"


def test_number_formats() -> None:
    assert number(None) == "n/a"
    assert number(0) == "0"
    assert number(1.234) == "1.23"
    assert number(12.34) == "12.3"
    assert number(1234.5) == "1234"


def test_proc_helpers() -> None:
    assert 0 < free_port() < 65536
    assert cpu_ms(os.getpid()) > 0


def _runner_answering(status: int, body: dict[str, object]) -> Runner:
    runner = Runner("http://requester.invalid")
    runner.client.close()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    transport = httpx.MockTransport(handler)
    runner.client = httpx.Client(base_url="http://requester.invalid", transport=transport)
    return runner


def test_store_counters_from_the_debug_endpoint() -> None:
    found = _runner_answering(200, {"Store": {"Transactions": 7, "Statements": 21}})
    assert found.store_counters() == StoreCounters(7, 21)
    missing = _runner_answering(404, {"Code": 404, "Message": "Not Found"})
    assert missing.store_counters() is None
