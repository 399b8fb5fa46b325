"""Wires nodes together: one bus per node, the requester and/or compute roles behind it.

This is the only place (with ``cli/serve.py``) where requester and compute meet; they talk
to each other only through bprotocol messages on the bus.
"""

from __future__ import annotations

import logging
import platform
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry

from cli.client import DEFAULT_API_PORT
from cli.listen import (
    PORT_FLAG,
    PortInUseError,
    api_fallback_notice,
    bind_default,
    fallback_notice,
)
from cli.security import security_for
from compute.bidding.locality import DataLocality
from compute.bidding.selection import JobSelection
from compute.config import ComputeConfig
from compute.executors.registry import default_executors
from compute.gpus import detect as detect_gpus
from compute.gpus import gpu_labels
from compute.metrics import ComputeMetrics
from compute.node import ComputeNode
from compute.publishers.capability import ResultLinks
from compute.publishers.local_server import results_app
from compute.publishers.registry import default_publishers
from compute.runner import Plugins
from compute.storage.registry import default_storage
from protocol.dispatch import Dispatcher
from protocol.envelope import Codec, Envelope
from protocol.errors import ValidationError
from protocol.gossip import Announcer
from protocol.identity import NodeIdentity
from protocol.labels import runtime_labels
from protocol.messages import NodeInfoMessage
from protocol.metrics import BusCollector
from protocol.node import NodeInfo, NodeType
from protocol.outbox import Outbox
from protocol.resources import Resources
from protocol.transport import Bus, BusOptions
from requester.accept_probes import AcceptProbeConfig, probes_of
from requester.api import create_app
from requester.api_auth import check_exposure
from requester.lease_keeper import LeaseKeeper
from requester.limits import SubmissionLimits
from requester.metrics import RequesterMetrics
from requester.orchestrator import Orchestrator, RequesterConfig
from requester.plan import SchedulerConfig
from requester.server import APIServer
from requester.store import JobStore, StoreError, open_database
from requester.tls import TLSFiles

log = logging.getLogger("bacalao.node")


def default_data_dir() -> Path:
    import os

    return Path(os.environ.get("BACALAO_DIR") or Path.home() / ".bacalao")


def detect_capacity(fraction: float = 0.8) -> Resources:
    cpus = psutil.cpu_count() or 1
    memory = psutil.virtual_memory().total
    disk = psutil.disk_usage(str(Path.home())).free
    return Resources(
        cpu=round(cpus * fraction, 3), memory=int(memory * fraction), disk=int(disk * fraction)
    )


DEFAULT_LOCAL_PUBLISHER_PORT = 6001
LOCAL_PUBLISHER_PORT_FLAG = "--local-publisher-port"
LOCAL_PUBLISHER_LISTEN_FLAG = "--local-publisher-listen"


@dataclass(frozen=True)
class NodeOptions:
    name: str
    data_dir: Path
    broker: str = "memory://"
    requester: bool = True
    compute: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    api_host: str = "127.0.0.1"
    # None: DEFAULT_API_PORT, or a free port when another program holds it (the node says
    # which); a number: that port or an error (0: any free port)
    api_port: int | None = None
    limit_cpu: float | None = None
    limit_memory: int | None = None
    allowed_local_paths: tuple[str, ...] = ()
    heartbeat_interval_s: float = 5.0
    disconnect_after_s: float = 15.0
    bid_timeout_s: float = 10.0
    over_ask: int = 1
    default_queue_timeout_s: float = 600.0
    reservation_ttl_s: float = 30.0
    lost_execution_grace_s: float = 10.0
    queue_backoff_s: float = 1.0  # a job no bid came for waits this, doubling, up to 15x
    finished_memory_s: float = 30.0
    # Node identity (cli/security.py): the cluster token (None: the data dir's, or a new one
    # on a requester), an allow-list file, or no checks at all.
    cluster_token: str | None = None
    allow_nodes: Path | None = None
    insecure: bool = False
    # Bearer tokens the requester's API asks for; none: open, which only a loopback API may be
    # (unless insecure).
    api_tokens: tuple[str, ...] = ()
    # The API and the local publisher's results server serve HTTPS with these
    # (--tls-cert/--tls-key); None: plain HTTP.
    tls: TLSFiles | None = None
    # What one job may ask (requester/limits.py); compute nodes bid only on jobs whose
    # ExecutionTimeout is within the same limit.
    limits: SubmissionLimits = field(default_factory=SubmissionLimits)
    local_publisher_host: str = "127.0.0.1"  # put in result URLs
    local_publisher_port: int | None = None  # None: DEFAULT_LOCAL_PUBLISHER_PORT, as api_port
    local_publisher_listen: str | None = None  # bound; None: local_publisher_host
    data_locality: str = "anywhere"
    # the requester's job store (--store): a SQLite path or URL, a postgresql:// URL; None:
    # SQLite, jobs.db in the data dir
    store: str | None = None
    # how long a requester's lease on a job outlasts its last renewal (each heartbeat), on a
    # store several requesters share
    lease_ttl_s: float = 15.0
    # Tests only (no flag): this compute node's results differ from every other's, to show
    # that verification finds it out.
    tamper_results: bool = False
    accept_networked: bool = False  # bid on jobs asking for network access
    job_selection: JobSelection = field(default_factory=JobSelection)  # --job-selection-*
    accept_probes: AcceptProbeConfig = field(default_factory=AcceptProbeConfig)  # --bid-accept-*
    docker_host: str | None = None  # None: DOCKER_HOST, else the local socket
    ipfs_api: str | None = None  # the IPFS daemon's RPC API multiaddr; None: no ipfs


def open_store(target: str, owner: str, lease_ttl_s: float) -> JobStore:
    """The requester's job store; a ValidationError naming --store if it cannot be opened.
    On a store several requesters may share, the jobs this one creates are leased to it."""
    from cli.node_parsing import store_problem

    try:
        database = open_database(target)
    except StoreError as exc:
        raise store_problem(target, exc) from None
    lease_owner = owner if database.shared else ""
    return JobStore(database, lease_owner=lease_owner, lease_ttl_s=lease_ttl_s)


def http_base_url(host: str, port: int, scheme: str = "http") -> str:
    """``http://host:port`` (or ``https://``), with an IPv6 address in brackets."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class NodeProcess:
    """One node: a bus, its roles, gossip and (for a requester) the HTTP API."""

    def __init__(self, options: NodeOptions) -> None:
        self.options = options
        self.folder = options.data_dir / options.name
        if options.requester:  # before anything starts
            check_exposure(options.api_host, options.api_tokens, options.insecure)
        identity = NodeIdentity.load_or_create(self.folder)
        self.node_id = identity.node_id
        # The local results server serves a result only through the URL published for it.
        self.result_links = ResultLinks(identity.derive_key("results-server"))
        self.security = security_for(
            identity,
            options.data_dir,
            requester=options.requester,
            token=options.cluster_token,
            allow_nodes=options.allow_nodes,
            insecure=options.insecure,
        )
        self.dispatcher = Dispatcher()
        token = self.security.token
        self.bus = Bus(
            options.broker,
            self.node_id,
            self.dispatcher,
            Codec(self.node_id, signer=self.security.signer, verifier=self.security.verifier),
            BusOptions(peer_secret=token.encode() if token else None),
        )
        # Every point-to-point message leaves through one sender thread, batched per node.
        self.outbox = Outbox(self.bus, name=f"outbox-{self.node_id[:10]}")
        self.orchestrator: Orchestrator | None = None
        self.compute: ComputeNode | None = None
        self.api: APIServer | None = None
        self.store: JobStore | None = None
        self.lease_keeper: LeaseKeeper | None = None
        self.announcer: Announcer | None = None
        self.api_port: int | None = None
        self.results_server: APIServer | None = None
        self.local_publisher_url: str | None = None
        self.boot_id = secrets.token_hex(8)
        # what it is (Operating-System, Architecture, hostname, GPUs), under the operator's
        self.labels = {
            **runtime_labels(platform.system(), platform.machine(), socket.gethostname()),
            **(gpu_labels(detect_gpus()) if options.compute else {}),
            **options.labels,
        }
        # This node's Prometheus metrics (its own registry: nodes may share a process), served
        # at /metrics by the requester's API and by a compute node's results server.
        self.metrics = CollectorRegistry()
        self.metrics.register(BusCollector(self.bus))

    @property
    def api_url(self) -> str:
        """Where the requester's API answers (empty before it listens, or on a compute node)."""
        if self.api is None or self.api_port is None:
            return ""
        return http_base_url(self.options.api_host, self.api_port, self.api.scheme)

    @property
    def node_type(self) -> NodeType:
        if self.options.requester and self.options.compute:
            return NodeType.HYBRID
        return NodeType.REQUESTER if self.options.requester else NodeType.COMPUTE

    def info(self) -> NodeInfo:
        return self.described()[0]

    def described(self) -> tuple[NodeInfo, list[str] | None]:
        """This node's NodeInfo and, on a compute node, what its capacity left out."""
        using: list[str] | None = None
        if self.compute is not None:
            info, using = self.compute.described()
        else:
            info = NodeInfo(node_id=self.node_id, node_type=self.node_type, labels=self.labels)
        return info.model_copy(
            update={
                "transport": self.bus.active_transport,
                "peer_address": self.bus.peer_address,
                "boot_id": self.boot_id,
            }
        ), using

    def start(self) -> None:
        options = self.options
        if options.compute:
            self._start_results_server()
            self.compute = self._build_compute()
            ComputeMetrics(self.compute, self.metrics)
            self.dispatcher.compute = self.compute.handle
        if options.requester:
            target = options.store or str(self.folder / "jobs.db")
            self.store = open_store(target, self.node_id, options.lease_ttl_s)
            if self.store.lease_owner:
                self.lease_keeper = LeaseKeeper(
                    self.store.leases,
                    self.store.lease_owner,
                    options.lease_ttl_s,
                    options.heartbeat_interval_s,
                    on_taken=self._take_over,
                    on_ended=self._ended_elsewhere,
                )
            config = RequesterConfig(
                scheduler=SchedulerConfig(
                    over_ask=options.over_ask,
                    bid_timeout_s=options.bid_timeout_s,
                    default_queue_timeout_s=options.default_queue_timeout_s,
                    lost_execution_grace_s=options.lost_execution_grace_s,
                    queue_backoff_s=options.queue_backoff_s,
                    queue_backoff_max_s=15 * options.queue_backoff_s,
                ),
                disconnect_after_s=options.disconnect_after_s,
                limits=options.limits,
            )
            probes = probes_of(options.accept_probes)
            self.orchestrator = Orchestrator(
                self.info(), self.store, self.outbox, config, accept_probes=probes
            )
            RequesterMetrics(self.orchestrator, self.metrics)
            self.dispatcher.requester = self.orchestrator.handle
        self.bus.start()
        if self.compute is not None:
            self.compute.start()
        if self.orchestrator is not None:
            self.orchestrator.start()
            if self.lease_keeper is not None:
                self.lease_keeper.start()
            self._start_api(self.orchestrator)
        self.announcer = Announcer(
            self.bus,
            self.info,
            options.heartbeat_interval_s,
            holding=self.compute.holding if self.compute is not None else None,
            described=self.described,
        )
        if self.compute is not None:
            self.compute.add_listener(self.announcer.changed)
            self.dispatcher.gossip_listeners.append(self._on_gossip)
        self.bus.on_connected = self.announcer.changed
        self.announcer.start()
        log.info(
            "event=node_started node=%s type=%s transport=%s api_port=%s",
            self.node_id,
            self.node_type.value,
            self.bus.active_transport,
            self.api_port,
        )

    def _on_gossip(self, envelope: Envelope) -> None:
        if isinstance(envelope.payload, NodeInfoMessage) and self.announcer is not None:
            self.announcer.heard(envelope.payload.info)

    # One line per server that listens elsewhere than its default port because another
    # program held it, for the node's start-up output; empty when every default was free.
    port_notices: tuple[str, ...] = ()

    def _take_over(self, taken: Sequence[str], resumed: Sequence[str]) -> None:
        """The lease keeper claimed lapsed leases: the orchestrator follows those jobs now."""
        if self.orchestrator is not None:
            self.orchestrator.take_over(taken, resumed)

    def _ended_elsewhere(self, job_ids: Sequence[str]) -> None:
        if self.orchestrator is not None:
            self.orchestrator.ended_elsewhere(job_ids)

    def _start_api(self, orchestrator: Orchestrator) -> None:
        """The requester's API on ``api_host:api_port``; a default port another program
        holds falls back to a free one, logged and in :attr:`port_notices`."""
        options = self.options
        wanted = DEFAULT_API_PORT if options.api_port is None else options.api_port
        sock, fell_back = bind_default(  # errors name the flag: in use, not this host...
            options.api_host, wanted, fallback=options.api_port is None
        )
        app = create_app(orchestrator, options.api_tokens, self.metrics)
        self.api = APIServer(app, options.api_host, name="api", sock=sock, tls=options.tls)
        try:
            self.api_port = self.api.start()
        except RuntimeError as exc:
            raise ValidationError(PORT_FLAG, str(exc)) from None
        if fell_back:
            self._log_fallback("api", wanted, api_fallback_notice(wanted, self.api_port))

    def _start_results_server(self) -> None:
        """Serve the local publisher's folder on the listen address; the advertised address
        (``local_publisher_host``) goes into the URLs of the results it publishes. A default
        port another program holds (a second node on this host) falls back to a free one."""
        options = self.options
        folder = self.folder / "results"
        folder.mkdir(parents=True, exist_ok=True)
        listen = options.local_publisher_listen or options.local_publisher_host
        explicit = options.local_publisher_port
        wanted = DEFAULT_LOCAL_PUBLISHER_PORT if explicit is None else explicit
        try:
            sock, fell_back = bind_default(
                listen,
                wanted,
                fallback=explicit is None,
                host_flag=LOCAL_PUBLISHER_LISTEN_FLAG,
                port_flag=LOCAL_PUBLISHER_PORT_FLAG,
            )
        except PortInUseError:
            raise ValidationError(
                LOCAL_PUBLISHER_PORT_FLAG,
                f"the results server cannot listen on {listen}:{wanted} (in use: another node "
                f"or program listens there; pick another {LOCAL_PUBLISHER_PORT_FLAG}, "
                "0 for any free port)",
            ) from None
        self.results_server = APIServer(
            results_app(folder, self.result_links, self.metrics),
            listen,
            name="results_server",
            sock=sock,
            tls=options.tls,
        )
        try:
            port = self.results_server.start()
        except RuntimeError as exc:
            raise ValidationError(LOCAL_PUBLISHER_PORT_FLAG, str(exc)) from None
        if fell_back:
            notice = fallback_notice("results server", wanted, port, LOCAL_PUBLISHER_PORT_FLAG)
            self._log_fallback("results_server", wanted, notice)
        self.local_publisher_url = http_base_url(
            options.local_publisher_host, port, self.results_server.scheme
        )
        log.info(
            "event=local_publisher_ready node=%s listen=%s:%d url=%s",
            self.node_id,
            listen,
            port,
            self.local_publisher_url,
        )

    def _log_fallback(self, server: str, wanted: int, notice: str) -> None:
        self.port_notices = (*self.port_notices, notice)
        log.warning(
            "event=port_fallback node=%s server=%s default_port=%d %s",
            self.node_id,
            server,
            wanted,
            notice,
        )

    def _build_compute(self) -> ComputeNode:
        options = self.options
        detected = detect_capacity()
        capacity = Resources(
            cpu=options.limit_cpu if options.limit_cpu is not None else detected.cpu,
            memory=options.limit_memory if options.limit_memory is not None else detected.memory,
            disk=detected.disk,
        )
        plugins = Plugins(
            executors=default_executors(docker_host=options.docker_host),
            storage=default_storage(
                allowed_local_paths=options.allowed_local_paths, ipfs_api=options.ipfs_api
            ),
            publishers=default_publishers(
                self.folder / "results",
                local_base_url=self.local_publisher_url,
                result_links=self.result_links,
                node_id=self.node_id,
                ipfs_api=options.ipfs_api,
            ),
        )
        return ComputeNode(
            self.node_id,
            ComputeConfig(
                max_capacity=capacity,
                labels=dict(self.labels),
                reservation_ttl_s=options.reservation_ttl_s,
                finished_memory_s=options.finished_memory_s,
                data_locality=DataLocality.parse(options.data_locality),
                max_execution_timeout_s=float(options.limits.max_execution_timeout_s),
                accept_networked_jobs=options.accept_networked,
                job_selection=options.job_selection,
                tamper_results=options.tamper_results,
            ),
            plugins,
            self.outbox,
            self.folder,
            node_type=self.node_type,
        )

    def wait_for_compute_nodes(self, count: int, timeout_s: float = 30.0) -> None:
        """Block until the requester knows ``count`` connected compute nodes."""
        assert self.orchestrator is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            nodes = self.orchestrator.node_table.connected()
            if sum(1 for node in nodes if node.is_compute) >= count:
                return
            time.sleep(0.02)
        raise TimeoutError(f"only {len(nodes)} of {count} compute nodes joined in {timeout_s}s")

    def stop(self) -> None:
        if self.announcer is not None:
            self.announcer.close()
        if self.orchestrator is not None:
            self.orchestrator.logs.close()  # ends open log streams: the API stops at once
        if self.api is not None:
            self.api.stop()
        if self.orchestrator is not None:
            self.orchestrator.close()
        if self.compute is not None:
            self.compute.close()
        if self.results_server is not None:
            self.results_server.stop()
        self.outbox.close()
        self.bus.close()
        if self.lease_keeper is not None:
            self.lease_keeper.stop()
        if self.store is not None:
            self.store.close()
        log.info("event=node_stopped node=%s", self.node_id)
