"""A typed client of the requester's Bacalhau v1 REST API (``/api/v1/...``).

Responses are parsed into the :mod:`protocol` models; every failure becomes an
:class:`~cli.errors.APIError` whose message a person can act on.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from cli.errors import APIError, ForeignServerError
from protocol.errors import ValidationError
from protocol.execution import Execution
from protocol.history import JobHistory
from protocol.job import Job, SpecConfig
from protocol.node import BuildVersionInfo, NodeInfo, NodeState
from protocol.tls_client import default_trust, handshake_failure, private_trust
from protocol.wire import STORED, WireModel

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 1234
DEFAULT_TIMEOUT_S = 30.0
# An idle connection is let go well before the requester's API closes it (its keep-alive,
# requester.server.KEEP_ALIVE_S): reusing one the server is closing at that very moment
# fails as "Server disconnected without sending a response".
KEEPALIVE_EXPIRY_S = 2.0
CONNECTION_LIMITS = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
ENV_API_HOST = "BACALAO_API_HOST"
ENV_API_PORT = "BACALAO_API_PORT"
ENV_API_TOKEN = "BACALAO_API_TOKEN"  # noqa: S105 (the variable's name)
ENV_TLS_CA = "BACALAO_TLS_CA"
_JOBS = "/api/v1/orchestrator/jobs"
_NODES = "/api/v1/orchestrator/nodes"
_AGENT = "/api/v1/agent"
_MAX_PAGES = 1000
MIN_PREFIX_LENGTH = 4  # the requester finds a job by a unique ID prefix this long or longer
_ROUTE_STATUSES = (404, 405)  # a requester answers these with its own JSON error

M = TypeVar("M", bound=WireModel)
QueryValue = str | int | bool


def base_url(host: str, port: int) -> str:
    """``127.0.0.1``, 1234 -> ``http://127.0.0.1:1234``; a host given as a URL is kept."""
    if "://" in host:
        return host.rstrip("/")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 address
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class PutJobResult:
    job_id: str
    evaluation_id: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``; ``next_token`` is empty on the last page."""

    items: tuple[Job, ...]
    next_token: str = ""


def _quoted(identifier: str) -> str:
    if not identifier.strip():
        raise APIError("an empty ID was given")
    return quote(identifier.strip(), safe="")


def _speaks_bacalhau(response: httpx.Response) -> bool:
    """True when an error answer has the shape a requester gives: JSON with a Message
    (Bacalhau's ``{Code, Message}`` or ``{code, message}``)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, Mapping) and any(str(key).lower() == "message" for key in body)


@contextmanager
def _prefix_hint(job_id: str) -> Iterator[None]:
    """A "not found" for a job ID shorter than a usable prefix says that it is too short."""
    try:
        yield
    except APIError as exc:
        given = job_id.strip()
        short = len(given) < MIN_PREFIX_LENGTH
        if exc.status_code != 404 or not short or isinstance(exc, ForeignServerError):
            raise
        raise APIError(
            f"job ID {given!r} is too short: give the full ID or at least its first "
            f"{MIN_PREFIX_LENGTH} characters (`bacalao job list` shows the first 10)",
            status_code=exc.status_code,
        ) from None


def _error_message(response: httpx.Response) -> tuple[str, str]:
    """The message and field of an error response: Bacalhau's ``{Code, Message, Field}``,
    FastAPI's ``{detail}``, or the start of whatever text came back."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        lowered = {str(key).lower(): value for key, value in body.items()}
        message = lowered.get("message") or lowered.get("detail") or lowered.get("error")
        if message:
            return str(message), str(lowered.get("field") or "")
    text = response.text.strip()[:300]
    return text or response.reason_phrase or f"HTTP {response.status_code}", ""


def trusting(tls_ca: Path | None) -> ssl.SSLContext:
    """What the client verifies servers with: the system's CAs, or only ``tls_ca``'s."""
    if tls_ca is None:
        return default_trust()
    try:
        return private_trust(tls_ca)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise APIError(f"--tls-ca: no PEM CA certificate in {tls_ca}: {reason}") from None


class APIClient:
    """The requester's REST API. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        host: str = DEFAULT_API_HOST,
        port: int = DEFAULT_API_PORT,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        self.base_url = base_url(host, port)
        # also what the CLI trusts a results server's https:// URL with (`job get`)
        self.trust = trusting(tls_ca)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            verify=self.trust,
            limits=CONNECTION_LIMITS,
        )
        self.authenticate(token)

    def authenticate(self, token: str | None) -> None:
        """Send ``token`` as the bearer token of every request from now on (None: none)."""
        if token:
            self._http.headers["Authorization"] = f"Bearer {token.strip()}"
        else:
            self._http.headers.pop("Authorization", None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- jobs -----------------------------------------------------------------------------

    def put_job(self, job: Job) -> PutJobResult:
        body = self._request("PUT", _JOBS, json={"Job": job.to_wire()})
        warnings = body.get("Warnings") or []
        return PutJobResult(
            job_id=str(body.get("JobID") or ""),
            evaluation_id=str(body.get("EvaluationID") or ""),
            warnings=tuple(str(warning) for warning in warnings),
        )

    def get_job(self, job_id: str) -> Job:
        with _prefix_hint(job_id):
            body = self._request("GET", f"{_JOBS}/{_quoted(job_id)}")
        return self._parse(Job, body.get("Job"), "job")

    def list_jobs(
        self,
        *,
        limit: int | None = None,
        next_token: str = "",
        order_by: str = "",
        reverse: bool = False,
        labels: str = "",
        namespace: str = "",
    ) -> JobPage:
        """One page of jobs. ``labels`` is a selector (``env=prod,region in (eu)``); an empty
        ``namespace`` asks for every namespace."""
        params: dict[str, QueryValue] = {}
        if limit is not None:
            params["limit"] = limit
        if next_token:
            params["next_token"] = next_token
        if order_by:
            params["order_by"] = order_by
        if reverse:
            params["reverse"] = "true"
        if labels:
            params["labels"] = labels
        if namespace:
            params["namespace"] = namespace
        body = self._request("GET", _JOBS, params=params)
        items = tuple(self._parse(Job, item, "job") for item in self._items(body))
        return JobPage(items=items, next_token=str(body.get("NextToken") or ""))

    def stop_job(self, job_id: str, reason: str = "") -> str:
        """Ask the requester to stop a job; returns the evaluation ID."""
        params: dict[str, QueryValue] = {"reason": reason} if reason else {}
        with _prefix_hint(job_id):
            body = self._request("DELETE", f"{_JOBS}/{_quoted(job_id)}", params=params)
        return str(body.get("EvaluationID") or "")

    def executions(self, job_id: str) -> list[Execution]:
        items = self._job_items(job_id, "executions")
        return [self._parse(Execution, item, "execution") for item in items]

    def history(self, job_id: str) -> list[JobHistory]:
        items = self._job_items(job_id, "history")
        return [self._parse(JobHistory, item, "history entry") for item in items]

    def results(self, job_id: str) -> list[SpecConfig]:
        """The published result specs of a job: one per execution that published one."""
        items = self._job_items(job_id, "results")
        return [self._parse(SpecConfig, item, "result spec") for item in items]

    def job_logs(
        self, job_id: str, *, execution_id: str = "", follow: bool = False, tail: int = 0
    ) -> Iterator[str]:
        """``GET /jobs/{id}/logs``: its NDJSON lines as they arrive (:mod:`cli.logs` reads
        them); with ``follow``, until the execution ends."""
        params: dict[str, QueryValue] = {"follow": "true" if follow else "false"}
        if execution_id:
            params["execution_id"] = execution_id
        if tail:
            params["tail"] = tail
        with _prefix_hint(job_id):
            yield from self.stream_lines(f"{_JOBS}/{_quoted(job_id)}/logs", params)

    # -- nodes and agent ------------------------------------------------------------------

    def nodes(self) -> list[NodeState]:
        return [self._parse(NodeState, item, "node") for item in self._all_items(_NODES)]

    def node(self, node_id: str) -> NodeState:
        body = self._request("GET", f"{_NODES}/{_quoted(node_id)}")
        return self._parse(NodeState, body.get("Node"), "node")

    def version(self) -> BuildVersionInfo:
        body = self._request("GET", f"{_AGENT}/version")
        return self._parse(BuildVersionInfo, body.get("Version"), "version")

    def agent_node(self) -> NodeInfo:
        body = self._request("GET", f"{_AGENT}/node")
        return self._parse(NodeInfo, body.get("NodeInfo"), "node info")

    def alive(self) -> bool:
        """True when the requester answers ``/agent/alive`` with ``OK``; never raises."""
        try:
            body = self._request("GET", f"{_AGENT}/alive")
        except APIError:
            return False
        return str(body.get("Status", "")).upper() == "OK"

    # -- plumbing -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        with self._reaching(method, url):
            response = self._http.request(method, path, params=params, json=json)
        self._raise_for_error(method, path, response)
        try:
            body = response.json()
        except ValueError:
            raise self._foreign(method, path, response) from None
        if not isinstance(body, dict):
            raise APIError(f"{method} {url}: expected a JSON object, got {type(body).__name__}")
        return body

    def stream_lines(self, path: str, params: Mapping[str, QueryValue]) -> Iterator[str]:
        """``GET path``, whose answer streams (NDJSON): its lines, each as it arrives. Errors
        are those of every request, also when the stream breaks off midway."""
        url = f"{self.base_url}{path}"
        with (
            self._reaching("GET", url),
            self._http.stream("GET", path, params=params) as response,
        ):
            if response.is_error:
                response.read()
                self._raise_for_error("GET", path, response)
            yield from response.iter_lines()

    @contextmanager
    def _reaching(self, method: str, url: str) -> Iterator[None]:
        """What can go wrong between here and the requester, as an APIError to act on."""
        try:
            yield
        except httpx.ConnectError as exc:
            tls = handshake_failure(exc)
            if tls is not None and tls.untrusted:
                raise APIError(
                    f"cannot trust the requester at {self.base_url}: {tls.reason} (a private "
                    f"CA's certificate goes in --tls-ca or {ENV_TLS_CA})"
                ) from None
            if tls is not None:
                plain = f"http{self.base_url[5:]}" if self.base_url.startswith("https") else ""
                hint = f" (if it serves plain HTTP, give the host as {plain})" if plain else ""
                raise APIError(
                    f"the TLS handshake with the requester at {self.base_url} failed: "
                    f"{tls.reason}; does it speak HTTPS?{hint}"
                ) from None
            raise APIError(
                f"cannot reach the requester at {self.base_url}: "
                "is `bacalao serve` or `bacalao devstack` running?"
            ) from None
        except httpx.RemoteProtocolError:
            hint = ""
            if self.base_url.startswith("http://"):
                hint = f" (if it serves HTTPS, give the host as https{self.base_url[4:]})"
            raise APIError(
                f"the requester at {self.base_url} closed the connection without an answer{hint}"
            ) from None
        except httpx.TimeoutException:
            raise APIError(f"the requester at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise APIError(f"{method} {url} failed: {exc}") from None

    def _raise_for_error(self, method: str, path: str, response: httpx.Response) -> None:
        if response.is_error:
            message, field = _error_message(response)
            if response.status_code in _ROUTE_STATUSES and not _speaks_bacalhau(response):
                raise self._foreign(method, path, response)
            raise APIError(message, status_code=response.status_code, field=field)

    def _job_items(self, job_id: str, what: str) -> list[Any]:
        with _prefix_hint(job_id):
            return list(self._all_items(f"{_JOBS}/{_quoted(job_id)}/{what}"))

    @staticmethod
    def _items(body: Mapping[str, Any]) -> list[Any]:
        items = body.get("Items", body.get("Nodes"))  # GET /nodes answers {Nodes, NextToken}
        return list(items) if isinstance(items, list) else []

    def _all_items(self, path: str) -> Iterator[Any]:
        """Every item of a list endpoint, following ``NextToken`` page after page."""
        token = ""
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            params: dict[str, QueryValue] = {"next_token": token} if token else {}
            body = self._request("GET", path, params=params)
            yield from self._items(body)
            token = str(body.get("NextToken") or "")
            if not token or token in seen:
                return
            seen.add(token)

    def _foreign(self, method: str, path: str, response: httpx.Response) -> ForeignServerError:
        """An answer no requester gives: something else listens at the API address."""
        kind = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
        status = f"{response.status_code} {response.reason_phrase}".strip()
        return ForeignServerError(
            f"the server at {self.base_url} does not look like a bacalao/Bacalhau requester "
            f"({method} {path} answered {status}, {kind}); check --api-host/--api-port",
            status_code=response.status_code,
        )

    def _parse(self, model: type[M], data: Any, what: str) -> M:
        if data is None:
            raise APIError(f"the requester at {self.base_url} sent no {what}")
        try:
            # Jobs the requester accepted under earlier rules must stay readable.
            return model.from_wire(data, context=STORED)
        except ValidationError as exc:
            raise APIError(
                f"the requester at {self.base_url} sent a {what} bacalao cannot read: {exc}"
            ) from None
