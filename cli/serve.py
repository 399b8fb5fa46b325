"""`bacalao serve` and `bacalao devstack`: start nodes in this process until Ctrl-C.

Their settings come from flags, environment variables and an optional ``--config`` file, in
that order, over the defaults of :class:`cli.node_config.NodeSettings`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.node_config import DEFAULTS as D
from cli.node_config import DEVSTACK_DEFAULTS, DevstackSettings, NodeSettings, load_settings
from cli.serve_options import (
    AcceptNetworked,
    AcceptProbeExec,
    AcceptProbeHttp,
    AcceptProbeTimeout,
    AllowListedLocalPaths,
    AllowNodesOption,
    ApiHost,
    ApiPort,
    ApiTokenOption,
    ApiTokensFileOption,
    BidTimeout,
    Broker,
    ClusterTokenOption,
    ConfigFile,
    CpuLimit,
    DataDir,
    DataLocalityOption,
    DefaultQueueTimeout,
    DisconnectAfter,
    DockerHost,
    HeartbeatInterval,
    InsecureOption,
    IpfsConnect,
    Labels,
    LeaseTtl,
    LocalPublisherAddress,
    LocalPublisherListen,
    LocalPublisherPort,
    LogFormat,
    LogLevel,
    MaxCount,
    MaxExecutionTimeout,
    MaxInlineBytes,
    MaxInputs,
    MaxResultPaths,
    MemoryLimit,
    Name,
    NodeType,
    OverAsk,
    ProbeExec,
    ProbeHttp,
    ProbeTimeout,
    RejectStateless,
    StoreTarget,
    TlsCertOption,
    TlsKeyOption,
)
from protocol.errors import BacalaoError

# what devstack decides for each of its nodes itself: not settings it takes
DEVSTACK_FIXED = frozenset({"node_type", "name"})
EXPLICIT = frozenset({"COMMANDLINE", "ENVIRONMENT"})  # click's sources of a value given


def given_settings(ctx: typer.Context, exclude: Sequence[str] = ("config",)) -> dict[str, Any]:
    """The settings this command was given on its command line or by their environment
    variables (not those left at their defaults), by setting name."""
    given = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        if name in exclude or source is None or source.name not in EXPLICIT:
            continue
        given[name] = list(value) if isinstance(value, tuple | list) else value
    return given


def setup_logging(settings: NodeSettings) -> None:
    """Log at ``settings.log_level`` to stderr, as text lines or JSON objects."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        names = {"asctime": "time", "levelname": "level", "name": "logger", "threadName": "thread"}
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(threadName)s %(message)s",
                rename_fields=names,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def _fail(exc: Exception) -> None:
    typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def check_api_address(host: str, port: int | None) -> None:
    """Before any node starts: an API host that cannot be an address is a usage error (exit
    2); a host:port nothing can listen on now (in use, not this machine's) fails with exit 1.
    ``port`` None is the default port, which falls back to a free one when taken: only the
    host is checked then."""
    from cli.listen import listen_problem, unresolvable

    problem = unresolvable(host)
    if problem:
        raise typer.BadParameter(problem, param_hint="'--api-host'")
    refused = listen_problem(host, 0 if port is None else port)
    if refused is not None:
        raise refused


def _say_port_notices(notices: Sequence[str]) -> None:
    """The default ports a node found taken, and where it listens instead."""
    for notice in notices:
        typer.secho(f"Note: {notice}", fg=typer.colors.YELLOW, err=True)


def serve(
    ctx: typer.Context,
    config: ConfigFile = None,
    node_type: NodeType = D.node_type,
    broker: Broker = D.broker,
    name: Name = D.name,
    labels: Labels = None,
    api_host: ApiHost = D.api_host,
    api_port: ApiPort = D.api_port,
    limit_total_cpu: CpuLimit = D.limit_total_cpu,
    limit_total_memory: MemoryLimit = D.limit_total_memory,
    allow_listed_local_paths: AllowListedLocalPaths = None,
    heartbeat_interval: HeartbeatInterval = D.heartbeat_interval,
    disconnect_after: DisconnectAfter = D.disconnect_after,
    bid_timeout: BidTimeout = D.bid_timeout,
    over_ask: OverAsk = D.over_ask,
    default_queue_timeout: DefaultQueueTimeout = D.default_queue_timeout,
    cluster_token: ClusterTokenOption = D.cluster_token,
    allow_nodes: AllowNodesOption = D.allow_nodes,
    insecure: InsecureOption = D.insecure,
    api_token: ApiTokenOption = None,
    api_tokens_file: ApiTokensFileOption = D.api_tokens_file,
    tls_cert: TlsCertOption = D.tls_cert,
    tls_key: TlsKeyOption = D.tls_key,
    max_execution_timeout: MaxExecutionTimeout = D.max_execution_timeout,
    max_count: MaxCount = D.max_count,
    max_inline_bytes: MaxInlineBytes = D.max_inline_bytes,
    max_inputs: MaxInputs = D.max_inputs,
    max_result_paths: MaxResultPaths = D.max_result_paths,
    local_publisher_address: LocalPublisherAddress = D.local_publisher_address,
    local_publisher_listen: LocalPublisherListen = D.local_publisher_listen,
    local_publisher_port: LocalPublisherPort = D.local_publisher_port,
    data_locality: DataLocalityOption = D.data_locality,
    job_selection_accept_networked: AcceptNetworked = D.job_selection_accept_networked,
    job_selection_reject_stateless: RejectStateless = D.job_selection_reject_stateless,
    job_selection_probe_http: ProbeHttp = D.job_selection_probe_http,
    job_selection_probe_exec: ProbeExec = D.job_selection_probe_exec,
    job_selection_probe_timeout: ProbeTimeout = D.job_selection_probe_timeout,
    bid_accept_probe_http: AcceptProbeHttp = D.bid_accept_probe_http,
    bid_accept_probe_exec: AcceptProbeExec = D.bid_accept_probe_exec,
    bid_accept_probe_timeout: AcceptProbeTimeout = D.bid_accept_probe_timeout,
    docker_host: DockerHost = D.docker_host,
    ipfs_connect: IpfsConnect = D.ipfs_connect,
    data_dir: DataDir = D.data_dir,
    store: StoreTarget = D.store,
    lease_ttl: LeaseTtl = D.lease_ttl,
    log_level: LogLevel = D.log_level,
    log_format: LogFormat = D.log_format,
) -> None:
    """Run one node (requester, compute, or both) until Ctrl-C."""
    from cli.stack import NodeProcess

    node: NodeProcess | None = None
    try:
        settings = load_settings(given_settings(ctx), config)
    except BacalaoError as exc:
        _fail(exc)
        return
    setup_logging(settings)
    try:
        options = settings.node_options()
        if options.requester:
            check_api_address(options.api_host, options.api_port)
        node = NodeProcess(options)
        node.start()
    except (BacalaoError, OSError, TimeoutError) as exc:
        if node is not None:
            node.stop()  # whatever did start (bus, compute, results server) stops cleanly
        _fail(exc)
        return
    _say_port_notices(node.port_notices)
    if node.security.notice:
        typer.secho(f"Cluster: {node.security.notice}", fg=typer.colors.GREEN, err=True)
    if node.security.insecure:
        typer.secho(
            "Warning: --insecure: this node accepts unsigned messages from anyone"
            + ("" if options.api_tokens or not options.requester else ", and its API has no token")
            + ".",
            fg=typer.colors.YELLOW,
            err=True,
        )
    where = f" API on {node.api_url}" if node.api_url else ""
    typer.echo(
        f"bacalao {node.node_type.value} node {node.node_id} on {options.broker}.{where}",
        err=True,
    )
    try:
        _wait_for_signal()
    finally:
        node.stop()


def devstack(
    ctx: typer.Context,
    compute_nodes: Annotated[
        int, typer.Option("--compute-nodes", min=0, help="Compute nodes next to the requester.")
    ] = 3,
    config: ConfigFile = None,
    broker: Broker = D.broker,
    labels: Labels = None,
    api_host: ApiHost = D.api_host,
    api_port: ApiPort = D.api_port,
    limit_total_cpu: CpuLimit = D.limit_total_cpu,
    limit_total_memory: MemoryLimit = D.limit_total_memory,
    allow_listed_local_paths: AllowListedLocalPaths = None,
    local_publisher_address: LocalPublisherAddress = D.local_publisher_address,
    local_publisher_listen: LocalPublisherListen = D.local_publisher_listen,
    data_locality: DataLocalityOption = D.data_locality,
    job_selection_accept_networked: AcceptNetworked = D.job_selection_accept_networked,
    job_selection_reject_stateless: RejectStateless = D.job_selection_reject_stateless,
    job_selection_probe_http: ProbeHttp = D.job_selection_probe_http,
    job_selection_probe_exec: ProbeExec = D.job_selection_probe_exec,
    job_selection_probe_timeout: ProbeTimeout = D.job_selection_probe_timeout,
    bid_accept_probe_http: AcceptProbeHttp = D.bid_accept_probe_http,
    bid_accept_probe_exec: AcceptProbeExec = D.bid_accept_probe_exec,
    bid_accept_probe_timeout: AcceptProbeTimeout = D.bid_accept_probe_timeout,
    docker_host: DockerHost = D.docker_host,
    ipfs_connect: IpfsConnect = D.ipfs_connect,
    over_ask: OverAsk = D.over_ask,
    api_token: ApiTokenOption = None,
    api_tokens_file: ApiTokensFileOption = D.api_tokens_file,
    tls_cert: TlsCertOption = D.tls_cert,
    tls_key: TlsKeyOption = D.tls_key,
    data_dir: DataDir = D.data_dir,
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="BACALAO_LOG_LEVEL", help="debug, info, ...")
    ] = DEVSTACK_DEFAULTS.log_level,
    log_format: LogFormat = D.log_format,
) -> None:
    """One requester and N compute nodes in this process, for development and demos."""
    from cli.devstack import Devstack
    from cli.stack import default_data_dir

    try:
        settings = devstack_settings(given_settings(ctx, ("config", "compute_nodes")), config)
    except BacalaoError as exc:
        _fail(exc)
        return
    setup_logging(settings)
    try:
        check_api_address(settings.api_host, settings.api_port)
        base = settings.node_options(
            name="requester", data_dir=(settings.data_dir or default_data_dir()) / "devstack"
        )
        stack = Devstack(base, compute_nodes)
        stack.start()
    except (BacalaoError, OSError, TimeoutError) as exc:
        _fail(exc)
        return
    _say_port_notices(stack.requester.port_notices)
    typer.echo(
        f"devstack: 1 requester + {compute_nodes} compute nodes on {settings.broker}; "
        f"API on {stack.requester.api_url}  (Ctrl-C to stop)",
        err=True,
    )
    try:
        _wait_for_signal()
    finally:
        stack.stop()


def devstack_settings(given: dict[str, Any], config_file: Path | None) -> NodeSettings:
    """A devstack's settings: its own defaults under the file and the flags; the settings it
    decides for its nodes itself are refused in a config file."""
    from protocol.errors import ValidationError

    settings = load_settings(given, config_file, DevstackSettings)
    fixed = sorted(name for name in settings.model_fields_set & DEVSTACK_FIXED)
    if fixed:
        key = fixed[0].replace("_", "-")
        raise ValidationError(key, f"devstack sets this for each of its nodes (in {config_file})")
    return settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("devstack")(devstack)
