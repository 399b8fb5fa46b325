"""The flags of ``bacalao serve`` and ``devstack``: each can also be set by its environment
variable (``--help`` names it) or in a ``--config`` file (:mod:`cli.node_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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
    typer.Option(
        "--labels", envvar="BACALAO_LABELS", help="Node labels k=v (repeat, or comma-separated)."
    ),
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
    typer.Option(
        "--limit-total-cpu",
        envvar="BACALAO_LIMIT_TOTAL_CPU",
        help="CPU the node offers (500m, 2). Default: 80% of cores.",
    ),
]
MemoryLimit = Annotated[
    str | None,
    typer.Option(
        "--limit-total-memory",
        envvar="BACALAO_LIMIT_TOTAL_MEMORY",
        help="Memory the node offers (4Gi). Default: 80% of RAM.",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="BACALAO_DIR", help="Where state lives (default ~/.bacalao)."
    ),
]
StoreTarget = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="BACALAO_STORE",
        show_default=False,
        help="The requester's job store: a SQLite file (a path or sqlite:///path; default: "
        "jobs.db in the data dir), or postgresql://user:pass@host:port/db to share one.",
    ),
]
LeaseTtl = Annotated[
    float,
    typer.Option(
        "--lease-ttl",
        envvar="BACALAO_LEASE_TTL",
        help="On a shared (PostgreSQL) store: seconds a requester's hold on its jobs outlasts "
        "its last heartbeat; longer than --heartbeat-interval.",
    ),
]
OverAsk = Annotated[
    int,
    typer.Option(
        "--over-ask",
        envvar="BACALAO_OVER_ASK",
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
        envvar="BACALAO_ALLOW_NODES",
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
        envvar="BACALAO_API_TOKENS_FILE",
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
    envvar = "BACALAO_" + flag.removeprefix("--").upper().replace("-", "_")
    return typer.Option(flag, envvar=envvar, min=0, help=help_text, rich_help_panel=LIMITS_PANEL)


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
LogLevel = Annotated[
    str,
    typer.Option("--log-level", envvar="BACALAO_LOG_LEVEL", help="debug, info, warning, error."),
]
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
        envvar="BACALAO_ALLOW_LISTED_LOCAL_PATHS",
        help="Local paths jobs may mount (/data, or /data:rw to allow writes). Repeatable.",
    ),
]
LocalPublisherAddress = Annotated[
    str,
    typer.Option(
        "--local-publisher-address",
        envvar="BACALAO_LOCAL_PUBLISHER_ADDRESS",
        help="Address put in the URLs of local results: the host others reach this node's "
        "results server at.",
    ),
]
LocalPublisherListen = Annotated[
    str | None,
    typer.Option(
        "--local-publisher-listen",
        envvar="BACALAO_LOCAL_PUBLISHER_LISTEN",
        help="Address the local publisher's HTTP server listens on (0.0.0.0: every interface). "
        "Default: --local-publisher-address.",
    ),
]
SELECTION_PANEL = "Job selection (which jobs this compute node bids on)"
AcceptNetworked = Annotated[
    bool,
    typer.Option(
        "--job-selection-accept-networked",
        envvar="BACALAO_JOB_SELECTION_ACCEPT_NETWORKED",
        help="Bid on jobs that ask for network access (Network Full or Host).",
        rich_help_panel=SELECTION_PANEL,
    ),
]
RejectStateless = Annotated[
    bool,
    typer.Option(
        "--job-selection-reject-stateless",
        envvar="BACALAO_JOB_SELECTION_REJECT_STATELESS",
        help="Bid only on jobs that read input data.",
        rich_help_panel=SELECTION_PANEL,
    ),
]
ProbeHttp = Annotated[
    str | None,
    typer.Option(
        "--job-selection-probe-http",
        envvar="BACALAO_JOB_SELECTION_PROBE_HTTP",
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
        envvar="BACALAO_JOB_SELECTION_PROBE_EXEC",
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
        envvar="BACALAO_JOB_SELECTION_PROBE_TIMEOUT",
        min=0.1,
        help="Seconds a probe has to answer.",
        rich_help_panel=SELECTION_PANEL,
    ),
]
ACCEPT_PANEL = "Bid acceptance (which bids this requester accepts)"
AcceptProbeHttp = Annotated[
    str | None,
    typer.Option(
        "--bid-accept-probe-http",
        envvar="BACALAO_BID_ACCEPT_PROBE_HTTP",
        metavar="URL",
        help='POST {"Job", "NodeID", "Node"} as JSON to URL for each positive bid: a status '
        'other than 2xx vetoes it, a JSON {"Accept": bool, "Reason": str} decides, any other '
        "2xx accepts; no answer in time vetoes. Every bid then waits for approval.",
        rich_help_panel=ACCEPT_PANEL,
    ),
]
AcceptProbeExec = Annotated[
    str | None,
    typer.Option(
        "--bid-accept-probe-exec",
        envvar="BACALAO_BID_ACCEPT_PROBE_EXEC",
        metavar="CMD",
        help='Run CMD (sh -c) for each positive bid with {"Job", "NodeID", "Node"} as JSON '
        "on stdin and in BACALHAU_BID_ACCEPT_PROBE_DATA: exit 0 accepts, anything else "
        "vetoes with the last line of its stderr; killed and vetoed after the probe timeout.",
        rich_help_panel=ACCEPT_PANEL,
    ),
]
AcceptProbeTimeout = Annotated[
    float,
    typer.Option(
        "--bid-accept-probe-timeout",
        envvar="BACALAO_BID_ACCEPT_PROBE_TIMEOUT",
        min=0.1,
        help="Seconds a bid accept probe has to answer.",
        rich_help_panel=ACCEPT_PANEL,
    ),
]
DataLocalityOption = Annotated[
    str,
    typer.Option(
        "--data-locality",
        "--job-selection-data-locality",
        envvar="BACALAO_DATA_LOCALITY",
        rich_help_panel=SELECTION_PANEL,
        help="anywhere: bid on jobs whatever their inputs; local: bid only when every input "
        "is already on this node.",
    ),
]
NodeType = Annotated[
    str,
    typer.Option(
        "--node-type", envvar="BACALAO_NODE_TYPE", help="requester, compute or requester,compute"
    ),
]
Name = Annotated[
    str,
    typer.Option("--name", envvar="BACALAO_NAME", help="Node folder name under the data dir."),
]
HeartbeatInterval = Annotated[
    float,
    typer.Option(
        "--heartbeat-interval",
        envvar="BACALAO_HEARTBEAT_INTERVAL",
        help="Seconds between a node's announcements of itself.",
    ),
]
DisconnectAfter = Annotated[
    float,
    typer.Option(
        "--disconnect-after",
        envvar="BACALAO_DISCONNECT_AFTER",
        help="Seconds of silence after which a requester takes a node for gone.",
    ),
]
BidTimeout = Annotated[
    float,
    typer.Option(
        "--bid-timeout",
        envvar="BACALAO_BID_TIMEOUT",
        help="Seconds a requester waits for a node's bid.",
    ),
]
DefaultQueueTimeout = Annotated[
    float,
    typer.Option(
        "--default-queue-timeout",
        envvar="BACALAO_DEFAULT_QUEUE_TIMEOUT",
        help="Seconds a job may wait while every able node is busy (jobs no node could "
        "ever run fail at once).",
    ),
]
LocalPublisherPort = Annotated[
    int | None,
    typer.Option(
        "--local-publisher-port",
        envvar="BACALAO_LOCAL_PUBLISHER_PORT",
        min=0,
        max=65535,
        show_default=False,
        help="Port of the local publisher's HTTP server (0: any free port). Default: 6001, "
        "or a free port when 6001 is taken, e.g. by another node on this host (the node "
        "prints which); a port given here is that port or an error.",
    ),
]
LogFormat = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="BACALAO_LOG_FORMAT",
        help="text: one line per event, key=value; json: one JSON object per line (time, "
        "level, logger, message, thread), for log pipelines.",
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="BACALAO_CONFIG",
        show_default=False,
        help="A config file (.yaml, .json or .toml) of settings keyed by these flags' names "
        "(api-port: 1234). Flags and environment variables override it.",
    ),
]
