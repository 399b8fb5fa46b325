"""Codecs for test senders: one signed by a node the cluster admits (it knows the token)."""

from __future__ import annotations

from protocol.admission import ClusterToken
from protocol.envelope import Codec
from protocol.identity import NodeIdentity
from protocol.sealing import Agreement
from protocol.signing import ReplayGuard, Signer, Verifier

TOKEN = "bct-the-token-of-the-test-cluster"
"""A cluster token for tests that start a compute node before (or without) a requester."""


def signed_codec(identity: NodeIdentity, token: str = TOKEN) -> Codec:
    """A codec that signs as ``identity`` with the credential ``token`` gives its key."""
    credential = ClusterToken(token).credential(identity.public_key)
    return Codec(identity.node_id, signer=Signer(identity, credential))


def checking_codec(token: str = TOKEN, window_s: float = 300.0) -> Codec:
    """A receiver's codec that admits ``token``'s holders only."""
    verifier = Verifier(ClusterToken(token), ReplayGuard(window_s))
    return Codec("n-receiver", verifier=verifier)


def node_codec(identity: NodeIdentity, token: str = TOKEN) -> Codec:
    """A codec as a node has one: it signs, seals to the peers it has heard from, and
    checks what it receives (admitting ``token``'s holders)."""
    agreement = Agreement(identity)
    credential = ClusterToken(token).credential(identity.public_key)
    return Codec(
        identity.node_id,
        signer=Signer(identity, credential, agreement),
        verifier=Verifier(ClusterToken(token), ReplayGuard(), agreement),
    )
