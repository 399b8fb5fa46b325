"""Start ``bacalao serve`` as separate OS processes and talk to them over HTTP."""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cli.client import CONNECTION_LIMITS
from protocol.identity import KEY_FILE, NodeIdentity
from tests.support.services import free_port
from tests.support.tls import TLSPair
from tests.support.wait import wait_until

TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass
class NodeProc:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    api_port: int | None = None
    api_token: str = field(default="", repr=False)  # its API asks for it
    tls_ca: Path | None = None  # its API serves HTTPS with a certificate of this CA
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        assert self.api_port is not None, f"{self.name} has no API"
        scheme = "https" if self.tls_ca is not None else "http"
        return f"{scheme}://127.0.0.1:{self.api_port}"

    @property
    def api(self) -> httpx.Client:
        """A client of the node's API that sends its token."""
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}
            verify = ssl.create_default_context(cafile=self.tls_ca) if self.tls_ca else True
            self._client = httpx.Client(
                base_url=self.api_url,
                timeout=10,
                headers=headers,
                verify=verify,
                limits=CONNECTION_LIMITS,
            )
        return self._client

    def node_id(self) -> str:
        """The node's ID, from the key it made in its folder on its first start."""
        seed = (self.data_dir / KEY_FILE).read_bytes()
        return NodeIdentity(seed).node_id

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def submit(self, job: dict[str, Any]) -> str:
        response = self.api.put("/api/v1/orchestrator/jobs", json={"Job": job})
        assert response.status_code == 200, response.text
        return str(response.json()["JobID"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/orchestrator/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json()["Job"])

    def executions(self, job_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/api/v1/orchestrator/jobs/{job_id}/executions")
        assert response.status_code == 200, response.text
        return list(response.json()["Items"])

    def wait_terminal(self, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["State"]["StateType"] in TERMINAL else None

        return wait_until(ended, timeout_s, 0.05, f"job {job_id} to end")

    def compute_count(self) -> int:
        items = self.api.get("/api/v1/orchestrator/nodes").json()["Nodes"]
        return sum(
            1
            for item in items
            if item["Info"].get("ComputeNodeInfo") and item["Connection"] == "CONNECTED"
        )


def start_node(
    tmp: Path,
    name: str,
    broker: str,
    node_type: str,
    *extra: str,
    api: bool = False,
    tls: TLSPair | None = None,
) -> NodeProc:
    data_dir = tmp / "data"
    log_path = tmp / f"{name}.log"
    port = free_port() if api else 0
    # Every requester started here asks for an API token, as a shared one should.
    token = f"api-token-of-{name}-{secrets.token_hex(8)}" if api else ""
    args = [
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        "serve",
        "--node-type",
        node_type,
        "--broker",
        broker,
        "--name",
        name,
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(port),
        "--heartbeat-interval",
        "0.5",
        "--disconnect-after",
        "5",
        "--local-publisher-port",
        "0",
        *(("--api-token", token) if token else ()),
        *(("--tls-cert", str(tls.cert), "--tls-key", str(tls.key)) if tls else ()),
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    ca = tls.ca if tls else None
    node = NodeProc(name, process, log_path, data_dir / name, port or None, token, ca)
    if api:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited early:\n{node.log()}")
            try:
                return node.api.get("/api/v1/agent/alive").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, 0.05, f"{name} API")
    return node
