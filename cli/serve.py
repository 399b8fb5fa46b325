"""`bacalao serve` and `bacalao devstack`: start nodes in this process until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from protocol.errors import BacalaoError, ValidationError
from protocol.labels import key_problem, value_problem
from protocol.units import parse_bytes, parse_cpu
from requester.limits import SubmissionLimits

if TYPE_CHECKING:
    from compute.bidding.selection import JobSelection

NODE_TYPES = {"requester", "compute"}
_LIMITS = SubmissionLimits()  # the defaults

Broker = Annotated[
    str,
    typer.Option(
        "--broker",
        envvar="BACALAO_BROKER",
        help="Transport URL: memory://, redis://host:port/db; several, ';'-separated, fail over.",
    ),
]
Labels = Annotated[
    list[str] | None,
    typer.Option("--labels", help="Node labels k=v (repeat, or comma-separated)."),
]
ApiHost = Annotated[
    str,
    typer.Option(
        "--api-host",
        envvar="BACALAO_API_HOST",
        help="Address the requester's API listens on (0.0.0.0: every interface).",
    ),
]
ApiPort = Annotated[
    int | None,
    typer.Option(
        "--api-port",
        envvar="BACALAO_API_PORT",
        min=0,
        max=65535,
        show_default=False,
        help="Port of the requester's API (0: any free port). Default: 1234, or a free port "
        "when 1234 is taken (the node prints which); a port given here is that port or an error.",
    ),
]
CpuLimit = Annotated[
    str | None,
    typer.Option("--limit-total-cpu", help="CPU the node offers (500m, 2). Default: 80% of cores."),
]
MemoryLimit = Annotated[
    str | None,
    typer.Option("--limit-total-memory", help="Memory the node offers (4Gi). Default: 80% of RAM."),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where state lives (default ~/.bacalao).")
]
OverAsk = Annotated[
    int,
    typer.Option(
        "--over-ask",
        min=1,
        max=20,
        help=(
            "1 (default): place each execution on a node known to have room, which starts it"
            " at once. More: ask Count x this many nodes for bids and accept the first Count."
        ),
    ),
]
ClusterTokenOption = Annotated[
    str | None,
    typer.Option(
        "--cluster-token",
        "--cluster-secret",
        envvar="BACALAO_CLUSTER_TOKEN",
        show_default=False,
        help="The token that admits nodes to this cluster (any string of 16+ characters). "
        "Default: the one in the data dir; a requester makes and prints one on its first "
        "start. Every message is signed by its node's key, and only nodes that know the "
        "token (or that --allow-nodes names) are listened to.",
    ),
]
AllowNodesOption = Annotated[
    Path | None,
    typer.Option(
        "--allow-nodes",
        show_default=False,
        help="File of node IDs (n-...) or base64 public keys, one per line, admitted "
        "without the token.",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        envvar="BACALAO_INSECURE",
        help="Turn node identity off (unsigned messages from anyone are accepted) and let "
        "an API without a token listen beyond loopback. Only for local experiments.",
    ),
]
ApiTokenOption = Annotated[
    list[str] | None,
    typer.Option(
        "--api-token",
        envvar="BACALAO_API_TOKEN",
        show_default=False,
        help="A bearer token the requester's API asks for (16+ characters; repeat the flag "
        "for several). Without one the API is open, which only a loopback --api-host may be.",
    ),
]
ApiTokensFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-tokens-file",
        show_default=False,
        help="File of API bearer tokens, one per line (# comments).",
    ),
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        envvar="BACALAO_TLS_CERT",
        show_default=False,
        help="PEM certificate (with its chain) the requester's API and the local "
        "publisher's results server serve HTTPS with; needs --tls-key. Clients reach the API "
        "at https://HOST:PORT (with --tls-ca for a private CA).",
    ),
]
TlsKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        envvar="BACALAO_TLS_KEY",
        show_default=False,
        help="PEM private key (unencrypted) of --tls-cert.",
    ),
]
LIMITS_PANEL = "Job limits (0: none)"


def _limit(flag: str, help_text: str) -> Any:
    return typer.Option(flag, min=0, help=help_text, rich_help_panel=LIMITS_PANEL)


MaxExecutionTimeout = Annotated[
    int,
    _limit(
        "--max-execution-timeout",
        "Seconds a job's ExecutionTimeout may be at most: the requester refuses a job asking "
        "more, a compute node does not bid on one.",
    ),
]
MaxCount = Annotated[int, _limit("--max-count", "Executions one job may ask for.")]
MaxInlineBytes = Annotated[
    int,
    _limit("--max-inline-bytes", "Bytes of inline input data (data: URLs, as sent) per job."),
]
MaxInputs = Annotated[int, _limit("--max-inputs", "Input sources per task.")]
MaxResultPaths = Annotated[int, _limit("--max-result-paths", "Result paths per task.")]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")]
DockerHost = Annotated[
    str | None,
    typer.Option(
        "--docker-host",
        envvar="DOCKER_HOST",
        help="Docker daemon for docker jobs (unix:///var/run/docker.sock, tcp://...); the node "
        "offers the docker engine when it answers at start.",
    ),
]
IpfsConnect = Annotated[
    str | None,
    typer.Option(
        "--ipfs-connect",
        envvar="BACALAO_IPFS_API",
        help="RPC API of the IPFS daemon for ipfs inputs and the ipfs publisher "
        "(/ip4/127.0.0.1/tcp/5001); the node offers ipfs while it answers.",
    ),
]
AllowListedLocalPaths = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-listed-local-paths",
        help="Local paths jobs may mount (/data, or /data:rw to allow writes). Repeatable.",
    ),
]
LocalPublisherAddress = Annotated[
    str,
    typer.Option(
        "--local-publisher-address",
        help="Address put in the URLs of local results: the host others reach this node's "
        "results server at.",
    ),
]
LocalPublisherListen = Annotated[
    str | None,
    typer.Option(
        "--local-publisher-listen",
        help="Address the local publisher's HTTP server listens on (0.0.0.0: every interface). "
        "Default: --local-publisher-address.",
    ),
]
SELECTION_PANEL = "Job selection (which jobs this compute node bids on)"
AcceptNetworked = Annotated[
    bool,
    typer.Option(
        "--job-selection-accept-networked",
        help="Bid on jobs that ask for network access (Network Full or Host).",
        rich_help_panel=SELECTION_PANEL,
    ),
]
RejectStateless = Annotated[
    bool,
    typer.Option(
        "--job-selection-reject-stateless",
        help="Bid only on jobs that read input data.",
        rich_help_panel=SELECTION_PANEL,
    ),
]
ProbeHttp = Annotated[
    str | None,
    typer.Option(
        "--job-selection-probe-http",
        metavar="URL",
        help='POST {"Job", "NodeID"} as JSON to URL for each job: a status other than 2xx '
        'refuses, a JSON {"ShouldBid": bool, "Reason": str} decides, any other 2xx bids; no '
        "answer in time refuses.",
        rich_help_panel=SELECTION_PANEL,
    ),
]
ProbeExec = Annotated[
    str | None,
    typer.Option(
        "--job-selection-probe-exec",
        metavar="CMD",
        help='Run CMD (sh -c) for each job with {"Job", "NodeID"} as JSON on stdin and in '
        "BACALHAU_JOB_SELECTION_PROBE_DATA: exit 0 bids, anything else refuses with the last "
        "line of its stderr; killed and refused after the probe timeout.",
        rich_help_panel=SELECTION_PANEL,
    ),
]
ProbeTimeout = Annotated[
    float,
    typer.Option(
        "--job-selection-probe-timeout",
        min=0.1,
        help="Seconds a probe has to answer.",
        rich_help_panel=SELECTION_PANEL,
    ),
]
DataLocalityOption = Annotated[
    str,
    typer.Option(
        "--data-locality",
        "--job-selection-data-locality",
        rich_help_panel=SELECTION_PANEL,
        help="anywhere: bid on jobs whatever their inputs; local: bid only when every input "
        "is already on this node.",
    ),
]


def parse_job_selection(
    reject_stateless: bool, probe_http: str | None, probe_exec: str | None, probe_timeout: float
) -> JobSelection:
    from compute.bidding.selection import JobSelection

    url = (probe_http or "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValidationError("job-selection-probe-http", f"{url!r} is not an http(s) URL")
    return JobSelection(
        reject_stateless=reject_stateless,
        probe_http=url,
        probe_exec=(probe_exec or "").strip(),
        probe_timeout_s=probe_timeout,
    )


def parse_labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values or []:
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise ValidationError("labels", f"{item!r} is not of the form key=value")
            # Constraints follow Kubernetes' label rules: a label outside them never matches.
            problem = key_problem(key.strip()) or value_problem(val.strip())
            if problem:
                raise ValidationError("labels", f"{item!r}: {problem}")
            labels[key.strip()] = val.strip()
    return labels


def parse_node_type(text: str) -> tuple[bool, bool]:
    roles = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = roles - NODE_TYPES
    if unknown or not roles:
        raise ValidationError("node-type", f"{text!r}: use requester, compute or requester,compute")
    return "requester" in roles, "compute" in roles


def _limits(cpu: str | None, memory: str | None) -> tuple[float | None, int | None]:
    try:
        return (
            parse_cpu(cpu) if cpu else None,
            parse_bytes(memory) if memory else None,
        )
    except ValueError as exc:
        raise ValidationError("limit-total-cpu/memory", str(exc)) from None


def parse_data_locality(text: str) -> str:
    from compute.bidding.locality import DataLocality

    try:
        return DataLocality.parse(text).value
    except ValidationError as exc:
        raise ValidationError("data-locality", exc.problem) from None


def parse_allowed_paths(values: list[str] | None) -> tuple[str, ...]:
    """The ``--allow-listed-local-paths`` values, each checked before any node starts."""
    from compute.storage.local import parse_allowed_path

    for value in values or ():
        try:
            parse_allowed_path(value)
        except ValidationError as exc:
            raise ValidationError("allow-listed-local-paths", exc.problem) from None
    return tuple(values or ())


def parse_ipfs_api(text: str | None) -> str | None:
    """The ``--ipfs-connect`` address as a multiaddr, checked before any node starts."""
    if not text:
        return None
    from protocol.ipfs import parse_api_address

    return parse_api_address(text, field="ipfs-connect").multiaddr


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
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
    node_type: Annotated[
        str, typer.Option("--node-type", help="requester, compute or requester,compute")
    ] = "requester,compute",
    broker: Broker = "memory://",
    name: Annotated[
        str, typer.Option("--name", help="Node folder name under the data dir.")
    ] = "node",
    labels: Labels = None,
    api_host: ApiHost = "127.0.0.1",
    api_port: ApiPort = None,
    limit_total_cpu: CpuLimit = None,
    limit_total_memory: MemoryLimit = None,
    allow_listed_local_paths: AllowListedLocalPaths = None,
    heartbeat_interval: Annotated[float, typer.Option("--heartbeat-interval")] = 5.0,
    disconnect_after: Annotated[float, typer.Option("--disconnect-after")] = 15.0,
    bid_timeout: Annotated[float, typer.Option("--bid-timeout")] = 10.0,
    over_ask: OverAsk = 1,
    default_queue_timeout: Annotated[
        float,
        typer.Option(
            "--default-queue-timeout",
            help="Seconds a job may wait while every able node is busy (jobs no node could "
            "ever run fail at once).",
        ),
    ] = 600.0,
    cluster_token: ClusterTokenOption = None,
    allow_nodes: AllowNodesOption = None,
    insecure: InsecureOption = False,
    api_token: ApiTokenOption = None,
    api_tokens_file: ApiTokensFileOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    max_execution_timeout: MaxExecutionTimeout = _LIMITS.max_execution_timeout_s,
    max_count: MaxCount = _LIMITS.max_count,
    max_inline_bytes: MaxInlineBytes = _LIMITS.max_inline_bytes,
    max_inputs: MaxInputs = _LIMITS.max_inputs,
    max_result_paths: MaxResultPaths = _LIMITS.max_result_paths,
    local_publisher_address: LocalPublisherAddress = "127.0.0.1",
    local_publisher_listen: LocalPublisherListen = None,
    local_publisher_port: Annotated[
        int | None,
        typer.Option(
            "--local-publisher-port",
            min=0,
            max=65535,
            show_default=False,
            help="Port of the local publisher's HTTP server (0: any free port). Default: 6001, "
            "or a free port when 6001 is taken, e.g. by another node on this host (the node "
            "prints which); a port given here is that port or an error.",
        ),
    ] = None,
    data_locality: DataLocalityOption = "anywhere",
    accept_networked: AcceptNetworked = False,
    reject_stateless: RejectStateless = False,
    probe_http: ProbeHttp = None,
    probe_exec: ProbeExec = None,
    probe_timeout: ProbeTimeout = 10.0,
    docker_host: DockerHost = None,
    ipfs_connect: IpfsConnect = None,
    data_dir: DataDir = None,
    log_level: LogLevel = "info",
) -> None:
    """Run one node (requester, compute, or both) until Ctrl-C."""
    from cli.stack import NodeOptions, NodeProcess, default_data_dir
    from requester.api_auth import api_tokens
    from requester.tls import tls_files

    setup_logging(log_level)
    node: NodeProcess | None = None
    try:
        requester, compute = parse_node_type(node_type)
        if requester:
            check_api_address(api_host, api_port)
        cpu, memory = _limits(limit_total_cpu, limit_total_memory)
        options = NodeOptions(
            name=name,
            data_dir=data_dir or default_data_dir(),
            broker=broker,
            requester=requester,
            compute=compute,
            labels=parse_labels(labels),
            api_host=api_host,
            api_port=api_port,
            limit_cpu=cpu,
            limit_memory=memory,
            allowed_local_paths=parse_allowed_paths(allow_listed_local_paths),
            heartbeat_interval_s=heartbeat_interval,
            disconnect_after_s=disconnect_after,
            bid_timeout_s=bid_timeout,
            over_ask=over_ask,
            default_queue_timeout_s=default_queue_timeout,
            cluster_token=cluster_token,
            allow_nodes=allow_nodes,
            insecure=insecure,
            api_tokens=api_tokens(api_token or (), api_tokens_file) if requester else (),
            tls=tls_files(tls_cert, tls_key),
            limits=SubmissionLimits(
                max_execution_timeout_s=max_execution_timeout,
                max_count=max_count,
                max_inline_bytes=max_inline_bytes,
                max_inputs=max_inputs,
                max_result_paths=max_result_paths,
            ),
            local_publisher_host=local_publisher_address,
            local_publisher_port=local_publisher_port,
            local_publisher_listen=local_publisher_listen,
            data_locality=parse_data_locality(data_locality),
            accept_networked=accept_networked,
            job_selection=parse_job_selection(
                reject_stateless, probe_http, probe_exec, probe_timeout
            ),
            docker_host=docker_host,
            ipfs_api=parse_ipfs_api(ipfs_connect),
        )
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
            + ("" if node.options.api_tokens or not requester else ", and its API has no token")
            + ".",
            fg=typer.colors.YELLOW,
            err=True,
        )
    where = f" API on {node.api_url}" if node.api_url else ""
    typer.echo(f"bacalao {node.node_type.value} node {node.node_id} on {broker}.{where}", err=True)
    try:
        _wait_for_signal()
    finally:
        node.stop()


def devstack(
    compute_nodes: Annotated[int, typer.Option("--compute-nodes", min=0)] = 3,
    broker: Broker = "memory://",
    labels: Labels = None,
    api_host: ApiHost = "127.0.0.1",
    api_port: ApiPort = None,
    limit_total_cpu: CpuLimit = None,
    limit_total_memory: MemoryLimit = None,
    allow_listed_local_paths: AllowListedLocalPaths = None,
    local_publisher_address: LocalPublisherAddress = "127.0.0.1",
    local_publisher_listen: LocalPublisherListen = None,
    data_locality: DataLocalityOption = "anywhere",
    accept_networked: AcceptNetworked = False,
    reject_stateless: RejectStateless = False,
    probe_http: ProbeHttp = None,
    probe_exec: ProbeExec = None,
    probe_timeout: ProbeTimeout = 10.0,
    docker_host: DockerHost = None,
    ipfs_connect: IpfsConnect = None,
    over_ask: OverAsk = 1,
    api_token: ApiTokenOption = None,
    api_tokens_file: ApiTokensFileOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    data_dir: DataDir = None,
    log_level: LogLevel = "warning",
) -> None:
    """One requester and N compute nodes in this process, for development and demos."""
    from cli.devstack import Devstack
    from cli.stack import NodeOptions, default_data_dir
    from requester.api_auth import api_tokens
    from requester.tls import tls_files

    setup_logging(log_level)
    try:
        check_api_address(api_host, api_port)
        cpu, memory = _limits(limit_total_cpu, limit_total_memory)
        base = NodeOptions(
            name="requester",
            data_dir=(data_dir or default_data_dir()) / "devstack",
            broker=broker,
            labels=parse_labels(labels),
            api_host=api_host,
            api_port=api_port,
            limit_cpu=cpu,
            limit_memory=memory,
            allowed_local_paths=parse_allowed_paths(allow_listed_local_paths),
            heartbeat_interval_s=1.0,
            disconnect_after_s=5.0,
            over_ask=over_ask,
            api_tokens=api_tokens(api_token or (), api_tokens_file),
            tls=tls_files(tls_cert, tls_key),
            local_publisher_host=local_publisher_address,
            local_publisher_listen=local_publisher_listen,
            data_locality=parse_data_locality(data_locality),
            accept_networked=accept_networked,
            job_selection=parse_job_selection(
                reject_stateless, probe_http, probe_exec, probe_timeout
            ),
            docker_host=docker_host,
            ipfs_api=parse_ipfs_api(ipfs_connect),
        )
        stack = Devstack(base, compute_nodes)
        stack.start()
    except (BacalaoError, OSError, TimeoutError) as exc:
        _fail(exc)
        return
    _say_port_notices(stack.requester.port_notices)
    typer.echo(
        f"devstack: 1 requester + {compute_nodes} compute nodes on {broker}; "
        f"API on {stack.requester.api_url}  (Ctrl-C to stop)",
        err=True,
    )
    try:
        _wait_for_signal()
    finally:
        stack.stop()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("devstack")(devstack)
