"""On ``peer://`` a node's queue is routed only to the hub its own key says binds it: a stranger
or another admitted node that binds it is refused, an old claim replayed moves nothing, and a
node restarted elsewhere takes its queue along with a newer claim."""

from __future__ import annotations

import pytest

from protocol.admission import ClusterToken
from protocol.errors import MessageError
from protocol.identity import NodeIdentity
from protocol.peer import frames, hub
from protocol.peer.config import PeerConfig
from protocol.queue_claims import QueueClaims, queue_owner
from protocol.signing import ReplayGuard, Signer, Verifier
from protocol.transport import node_queue_name
from tests.support.identities import TOKEN
from tests.support.wait import wait_until


def claims_of(identity: NodeIdentity, token: str = TOKEN) -> QueueClaims:
    cluster = ClusterToken(TOKEN)
    signer = Signer(identity, ClusterToken(token).credential(identity.public_key))
    return QueueClaims(signer, Verifier(cluster, ReplayGuard()))


def test_a_queue_s_owner_is_read_off_its_name() -> None:
    assert queue_owner("bprotocol.n-abc") == "n-abc"
    assert queue_owner("bprotocol.gossip.n-abc") == "n-abc"
    assert queue_owner("celery") is None
    assert queue_owner("bprotocol.") is None


def test_a_node_claims_its_own_queues_only_and_the_claim_checks_out() -> None:
    node = NodeIdentity.generate()
    claims = claims_of(node)
    mine = node_queue_name(node.node_id)
    claim = claims.make(mine, "10.0.0.1:7000")
    assert claim is not None
    assert claims.check(mine, "10.0.0.1:7000", claim) == claim["t"]
    assert claims.make(node_queue_name(NodeIdentity.generate().node_id), "10.0.0.1:7000") is None
    assert claims.required(mine)
    assert not claims.required("some.other.queue")
    assert not QueueClaims(None, None).required(mine)  # --insecure: nothing is checked


@pytest.mark.parametrize(
    "why",
    ["another node's key", "at another address", "tampered", "not admitted", "missing"],
)
def test_a_claim_that_does_not_prove_the_binding_is_refused(why: str) -> None:
    victim, insider = NodeIdentity.generate(), NodeIdentity.generate()
    queue = node_queue_name(victim.node_id)
    checker = claims_of(victim)
    claim: object
    address = "10.0.0.1:7000"
    if why == "another node's key":  # an admitted node signs a claim to the victim's queue
        made = claims_of(insider).make(node_queue_name(insider.node_id), address)
        assert made is not None
        claim = made
    elif why == "at another address":  # the victim's own claim, replayed by another hub
        claim = claims_of(victim).make(queue, address)
        address = "10.6.6.6:7000"
    elif why == "tampered":
        made = claims_of(victim).make(queue, address)
        assert made is not None
        claim = {**made, "t": made["t"] + 1}
    elif why == "not admitted":
        stranger = NodeIdentity.generate()
        queue = node_queue_name(stranger.node_id)
        claim = claims_of(stranger, token="bct-another-cluster-token").make(queue, address)
    else:
        claim = None
    with pytest.raises(MessageError):
        checker.check(queue, address, claim)


def start_hub(started: list[hub.PeerHub], node: NodeIdentity, *bootstrap: str) -> hub.PeerHub:
    config = PeerConfig(
        host="127.0.0.1", port=0, bootstrap=bootstrap, backoff_s=0.02, claims=claims_of(node)
    )
    item = hub.PeerHub(config)
    item.start()
    started.append(item)
    return item


def test_an_admitted_node_cannot_take_another_node_s_queue(hubs: list[hub.PeerHub]) -> None:
    victim, insider, sender = (NodeIdentity.generate() for _ in range(3))
    queue = node_queue_name(victim.node_id)
    at_victim = start_hub(hubs, victim)
    at_victim.declare_queue(queue)
    at_victim.bind("bprotocol", victim.node_id, queue, claims_of(victim))
    publisher = start_hub(hubs, sender, at_victim.address)
    wait_until(lambda: publisher.owner(queue) == at_victim.address, 10, message="the route")

    thief = start_hub(hubs, insider, at_victim.address)
    thief.declare_queue(queue)
    thief.bind("bprotocol", victim.node_id, queue, claims_of(insider))  # no claim it can make
    wait_until(lambda: publisher.refused_bindings > 0, 10, message="the thief's binding refused")
    assert publisher.owner(queue) == at_victim.address
    publisher.put(queue, {"body": "for the victim"})
    wait_until(lambda: at_victim.size(queue) == 1, 10, message="delivery to the victim")
    assert thief.size(queue) == 0


def test_a_node_restarted_elsewhere_takes_its_queue_along(hubs: list[hub.PeerHub]) -> None:
    node, sender = NodeIdentity.generate(), NodeIdentity.generate()
    queue = node_queue_name(node.node_id)
    first = start_hub(hubs, node)
    first.declare_queue(queue)
    first.bind("bprotocol", node.node_id, queue, claims_of(node))
    publisher = start_hub(hubs, sender, first.address)
    wait_until(lambda: publisher.owner(queue) == first.address, 10, message="the first route")
    second = start_hub(hubs, node, publisher.address)  # the same node, on a new port
    second.declare_queue(queue)
    second.bind("bprotocol", node.node_id, queue, claims_of(node))
    wait_until(lambda: publisher.owner(queue) == second.address, 10, message="the newer claim")


def test_control_frames_are_signed_by_their_node_and_checked() -> None:
    node, stranger = NodeIdentity.generate(), NodeIdentity.generate()
    mine = claims_of(node)
    body = frames.seal(None, frames.PEERS, mine, peers=["10.0.0.1:7000"])[4:]
    assert frames.check_seal(None, frames.decode(body), mine) == node.node_id
    tampered = frames.decode(body)
    tampered["peers"] = ["10.6.6.6:7000"]
    with pytest.raises(frames.FrameError, match="bad signature"):
        frames.check_seal(None, tampered, mine)
    unsigned = frames.decode(frames.seal(b"s3cret", frames.PEERS, peers=[])[4:])
    with pytest.raises(frames.FrameError, match="not signed"):
        frames.check_seal(b"s3cret", unsigned, mine)
    for stamp in (float("nan"), float("inf")):  # a stamp that never grows old is refused
        frozen: dict[str, object] = {"t": frames.PEERS, "peers": [], "ts": stamp}
        frozen["mac"] = frames._mac(b"s3cret", frozen)
        with pytest.raises(frames.FrameError, match="too long ago"):
            frames.check_seal(b"s3cret", frozen)
    outsider = claims_of(stranger, token="bct-another-cluster-token")
    theirs = frames.decode(frames.seal(None, frames.PEERS, outsider, peers=[])[4:])
    with pytest.raises(frames.FrameError, match="not admitted"):
        frames.check_seal(None, theirs, mine)


def test_a_hub_whose_node_is_not_admitted_cannot_join(hubs: list[hub.PeerHub]) -> None:
    member, stranger = NodeIdentity.generate(), NodeIdentity.generate()
    inside = start_hub(hubs, member)
    config = PeerConfig(
        host="127.0.0.1",
        port=0,
        bootstrap=(inside.address,),
        backoff_s=0.02,
        claims=claims_of(stranger, token="bct-another-cluster-token"),
    )
    outside = hub.PeerHub(config)
    outside.start()
    hubs.append(outside)
    wait_until(lambda: inside.dropped_frames > 0, 10, message="its HELLO dropped")
    assert outside.address not in inside.peers
