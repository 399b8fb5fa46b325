"""How a node proves who it is and decides whom to listen to, from its options.

Secure by default: the node signs every message with its key (and seals a message to one
node so that only that node can read it), and accepts only signed or sealed messages from
admitted nodes (the cluster token's holders, or an allow-list). Without a token, a requester
makes one on its first start and keeps it in the data dir (nodes sharing that data dir find
it there); another host's nodes are given it with ``--cluster-token``.
``insecure`` turns all of it off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from protocol.admission import Admission, AllowList, AnyOf, ClusterToken, generate_token
from protocol.errors import ValidationError
from protocol.identity import NodeIdentity
from protocol.sealing import Agreement
from protocol.signing import ReplayGuard, Signer, Verifier

TOKEN_FILE = "cluster.token"  # noqa: S105 (a file name)


@dataclass(frozen=True)
class Security:
    signer: Signer | None
    verifier: Verifier | None
    token: str | None  # also what peer:// links prove to join
    notice: str = ""  # what to tell the operator (a token made just now)

    @property
    def insecure(self) -> bool:
        return self.verifier is None


def read_token_file(data_dir: Path) -> str | None:
    path = data_dir / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _write_token_file(data_dir: Path, token: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")


def security_for(
    identity: NodeIdentity,
    data_dir: Path,
    *,
    requester: bool,
    token: str | None = None,
    allow_nodes: Path | None = None,
    insecure: bool = False,
    replay_window_s: float | None = None,
) -> Security:
    if insecure:
        return Security(None, None, token)
    notice = ""
    if token is None:
        token = read_token_file(data_dir)
    if token is None and allow_nodes is None:
        if not requester:
            raise ValidationError(
                "cluster-token",
                "a compute node needs the cluster's token to join: give --cluster-token "
                "(or BACALAO_CLUSTER_TOKEN) as the requester printed it at its first start, "
                "or --allow-nodes FILE; --insecure turns node identity checks off",
            )
        token = generate_token()
        try:
            _write_token_file(data_dir, token)
        except FileExistsError:  # another node on this data dir made one first
            token = read_token_file(data_dir) or token
        else:
            notice = (
                f"made a cluster token (kept in {data_dir / TOKEN_FILE}); nodes on other hosts "
                f"join with --cluster-token {token}"
            )
    rules: list[Admission] = []
    cluster = ClusterToken(token) if token is not None else None
    if cluster is not None:
        rules.append(cluster)
    if allow_nodes is not None:
        rules.append(AllowList.from_file(allow_nodes))
    credential = cluster.credential(identity.public_key) if cluster is not None else b""
    replay = ReplayGuard(replay_window_s) if replay_window_s is not None else ReplayGuard()
    agreement = Agreement(identity)  # direct messages are sealed to their recipient
    signer = Signer(identity, credential, agreement)
    return Security(signer, Verifier(AnyOf(rules), replay, agreement), token, notice)
