"""The README's commands, run as a user runs them: the `bacalao` command in its own process,
against nodes started by `bacalao devstack` / `bacalao serve` in theirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import httpx
import pytest

from tests.support.nodes import start_node
from tests.support.services import RedisServer, free_port
from tests.support.tls import make_tls
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "wasm"
HELLO_WAT = ROOT / "examples" / "wasm" / "hello.wat"
ENTRY = [sys.executable, "-c", "from cli.main import main; main()"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def bacalao(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [*ENTRY, *args]
    inherited = {k: v for k, v in os.environ.items() if k != "BACALAO_API_TOKEN"}
    environment = {**inherited, **(env or {})}
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=90, check=False, env=environment
    )


def test_readme_quick_start_runs_a_real_wasm_job(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bacalao wasm run --embedded examples/wasm/hello.wat Bacalhau" in readme
    result = bacalao("wasm", "run", "--embedded", "examples/wasm/hello.wat", "Bacalhau", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, Bacalhau!\n"


def test_a_failing_job_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    result = bacalao("wasm", "run", "--embedded", str(FIXTURES / "exit.wat"), "3", cwd=tmp_path)
    assert result.returncode == 1
    assert "exit" in result.stderr.lower()
    assert "3" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hybrid_node_from_serve_runs_a_job(tmp_path: Path) -> None:
    """`serve --node-type requester,compute`: one process, one node ID, both roles."""
    node = start_node(tmp_path, "hybrid", "memory://", "requester,compute", api=True)
    try:
        port = str(node.api_port)
        wait_until(lambda: node.compute_count() == 1, 30, message="the node's compute role")
        # Its API asks for a token: the CLI sends BACALAO_API_TOKEN, or --api-token.
        refused = bacalao("--api-port", port, "job", "list", cwd=tmp_path)
        assert refused.returncode == 1
        assert "needs an API token" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        token = {"BACALAO_API_TOKEN": node.api_token}
        wasm = ("wasm", "run", str(HELLO_WAT), "Hybrid")
        ran = bacalao("--api-port", port, *wasm, cwd=tmp_path, env=token)
        assert ran.returncode == 0, ran.stderr + node.log()
        assert ran.stdout == "Hello, Hybrid!\n"
        flag = ("--api-token", node.api_token)
        listed = bacalao(
            *flag, "node", "list", "--output", "json", "--api-port", port, cwd=tmp_path
        )
        assert listed.returncode == 0, listed.stderr
        nodes = json.loads(listed.stdout)
        assert [item["Info"]["NodeType"] for item in nodes] == ["Hybrid"]
        # A token given after the command wins over BACALAO_API_TOKEN and the root flag.
        wrong = {"BACALAO_API_TOKEN": "tok-of-another-cluster"}
        stale = bacalao("--api-port", port, "job", "list", cwd=tmp_path, env=wrong)
        assert stale.returncode == 1
        assert "Traceback" not in stale.stderr
        own = ("job", "list", "--api-token", node.api_token)
        chosen = bacalao("--api-port", port, "--api-token", "tok-x", *own, cwd=tmp_path, env=wrong)
        assert chosen.returncode == 0, chosen.stderr
    finally:
        node.stop()
    assert node.process.returncode == 0, node.log()  # Ctrl-C/SIGTERM: a clean stop


def test_serve_with_a_certificate_answers_https_only_to_clients_that_trust_it(
    tmp_path: Path,
) -> None:
    """`serve --tls-cert --tls-key`: the API speaks HTTPS; the CLI reaches it with --tls-ca
    (and the token), and says why it will not otherwise."""
    tls = make_tls(tmp_path / "tls")
    node = start_node(tmp_path, "secure", "memory://", "requester,compute", api=True, tls=tls)
    try:
        url = node.api_url
        assert url.startswith("https://")
        wait_until(lambda: node.compute_count() == 1, 30, message="the node's compute role")
        token = {"BACALAO_API_TOKEN": node.api_token}
        trusted = ("--api-host", url, "--tls-ca", str(tls.ca))
        ran = bacalao(*trusted, "wasm", "run", str(HELLO_WAT), "TLS", cwd=tmp_path, env=token)
        assert ran.returncode == 0, ran.stderr + node.log()
        assert ran.stdout == "Hello, TLS!\n"
        # The results server serves HTTPS too, and `job get` trusts it with the same CA.
        wasm = ("wasm", "run", "-p", "local", "--id-only", str(HELLO_WAT), "Files")
        published = bacalao(*trusted, *wasm, cwd=tmp_path, env=token)
        assert published.returncode == 0, published.stderr + node.log()
        job_id = published.stdout.strip()
        results = node.api.get(f"/api/v1/orchestrator/jobs/{job_id}/results").json()
        assert results["Items"][0]["Params"]["URL"].startswith("https://"), results
        out = tmp_path / "out"
        got = bacalao(
            *trusted, "job", "get", job_id, "--output-dir", str(out), cwd=tmp_path, env=token
        )
        assert got.returncode == 0, got.stderr + node.log()
        assert (out / "stdout").read_text() == "Hello, Files!\n"
        untrusted = bacalao("--api-host", url, "job", "list", cwd=tmp_path, env=token)
        assert untrusted.returncode == 1
        assert "cannot trust the requester" in untrusted.stderr, untrusted.stderr
        plain = bacalao("--api-port", str(node.api_port), "job", "list", cwd=tmp_path, env=token)
        assert plain.returncode == 1
        assert url in plain.stderr, plain.stderr  # the hint: give the https:// URL
        for result in (untrusted, plain):
            assert "Traceback" not in result.stderr
        assert f"API on {url}" in node.log()
    finally:
        node.stop()
    assert node.process.returncode == 0, node.log()


@contextmanager
def devstack(tmp_path: Path, *flags: str) -> Iterator[int]:
    """`bacalao devstack FLAGS` in its own process; yields its API port, stops it by PID."""
    port = free_port()
    log_path = tmp_path / "devstack.log"
    args = ["devstack", "--api-port", str(port), "--data-dir", str(tmp_path / "data"), *flags]
    with log_path.open("wb") as log:
        process = subprocess.Popen([*ENTRY, *args], stdout=log, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"devstack exited early:\n{log_path.read_text()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/agent/alive").is_success
            except httpx.HTTPError:
                return False

        wait_until(up, 60, 0.05, "the devstack's API")
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode == 0, log_path.read_text()


def test_devstack_labels_and_redis_broker_reach_every_node(
    tmp_path: Path, redis: RedisServer
) -> None:
    flags = ["--broker", redis.url, "--labels", "zone=eu,tier=gold", "--compute-nodes", "2"]
    with devstack(tmp_path, *flags) as port:
        env = {**os.environ, "BACALAO_API_PORT": str(port)}

        def listed() -> list[dict[str, object]] | None:
            command = [*ENTRY, "node", "list", "--output", "json"]
            shown = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=60, check=True
            )
            items = json.loads(shown.stdout)
            return [item["Info"] for item in items] if len(items) == 3 else None

        infos = wait_until(listed, 30, 0.2, "3 nodes")
        assert {info["Transport"] for info in infos} == {"redis"}
        labels = [cast(dict[str, str], info["Labels"]) for info in infos]
        given = {"zone": "eu", "tier": "gold"}  # with what each node says of itself
        assert all(given.items() <= found.items() for found in labels), labels
        assert all(found["Operating-System"] == "linux" for found in labels), labels
        ran = subprocess.run(
            [*ENTRY, "wasm", "run", str(HELLO_WAT), "Redis", "--constraints", "zone=eu"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == "Hello, Redis!\n"
