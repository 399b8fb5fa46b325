"""``peer://`` pieces: frames, URL parsing, and hubs talking over loopback TCP."""

from __future__ import annotations

import socket

import pytest
from kombu.connection import Connection

from protocol.errors import UnknownPeerError, ValidationError
from protocol.peer import frames, hub
from protocol.peer.config import PeerConfig, parse_peer_url
from tests.support.services import free_port
from tests.support.wait import wait_until


def test_frames_round_trip_and_refuse_garbage() -> None:
    data = frames.encode(frames.PUT, q="bprotocol.n-a", m={"body": "x" * 10})
    (length,) = frames.HEADER.unpack(data[:4])
    assert length == len(data) - 4
    assert frames.decode(data[4:]) == {"t": "put", "q": "bprotocol.n-a", "m": {"body": "x" * 10}}
    for body in (b"\xff\xfe", b"[1, 2]", b'{"t": "nope"}', b"not json", b"[" * 100_000):
        with pytest.raises(frames.FrameError):
            frames.decode(body)


def test_peer_urls_parse_with_bootstrap_and_advertise() -> None:
    config = parse_peer_url("peer://0.0.0.0:7000?bootstrap=10.0.0.5:7000,10.0.0.6:7001")
    assert (config.host, config.port) == ("0.0.0.0", 7000)
    assert config.bootstrap == ("10.0.0.5:7000", "10.0.0.6:7001")
    assert parse_peer_url("peer://127.0.0.1:0?advertise=1.2.3.4:9").advertised(5) == "1.2.3.4:9"
    assert parse_peer_url("peer://127.0.0.1:0").advertised(5) == "127.0.0.1:5"
    with pytest.raises(ValidationError, match="bootstrap"):
        parse_peer_url("peer://0.0.0.0:7000?bootstrap=nohostport")
    with pytest.raises(ValidationError, match="unknown option"):
        parse_peer_url("peer://0.0.0.0:7000?bootstap=a:1")


def start_hub(started: list[hub.PeerHub], *bootstrap: str) -> hub.PeerHub:
    item = hub.PeerHub(PeerConfig(host="127.0.0.1", port=0, bootstrap=bootstrap, backoff_s=0.02))
    item.start()
    started.append(item)
    return item


def test_a_node_that_knows_one_peer_learns_the_rest_and_their_queues(
    hubs: list[hub.PeerHub],
) -> None:
    seed = start_hub(hubs)
    seed.declare_queue("q.seed")
    seed.bind("bprotocol", "seed", "q.seed")
    a = start_hub(hubs, seed.address)
    b = start_hub(hubs, seed.address)
    b.declare_queue("q.b")
    b.bind("bprotocol", "b", "q.b")
    wait_until(lambda: a.owner("q.b") == b.address, 10, message="a learns b's queue")
    a.put("q.b", {"body": "hello"})
    assert wait_until(lambda: b.size("q.b") == 1, 10, message="delivery")
    assert b.get("q.b") == {"body": "hello"}
    assert sorted(a.connected_peers()) == sorted([seed.address, b.address])
    with pytest.raises(UnknownPeerError, match=r"q\.nobody"):
        a.put("q.nobody", {"body": "lost"})


def test_fanout_reaches_every_peer_once_and_a_bootstrap_alias_of_itself_is_dropped(
    hubs: list[hub.PeerHub],
) -> None:
    seed = start_hub(hubs)
    others = [start_hub(hubs, seed.address) for _ in range(2)]
    everyone = [seed, *others]
    for index, item in enumerate(everyone):
        item.declare_queue(f"g.{index}")
        item.bind("bprotocol.gossip", "", f"g.{index}")
    wait_until(lambda: all(len(h.connected_peers()) == 2 for h in everyone), 10, message="mesh")
    seed.fanout("bprotocol.gossip", {"body": "news"})
    wait_until(lambda: all(h.size(f"g.{i}") == 1 for i, h in enumerate(everyone)), 10)

    port = int(seed.address.rsplit(":", 1)[1])
    alias = f"localhost:{port}"
    seed._learn([alias])
    wait_until(lambda: alias not in seed.peers, 10, message="the self link to be dropped")
    seed.fanout("bprotocol.gossip", {"body": "again"})
    wait_until(lambda: all(h.size(f"g.{i}") == 2 for i, h in enumerate(everyone)), 10)
    assert seed.size("g.0") == 2


def test_malformed_frames_are_dropped_and_the_connection_goes_on(
    hubs: list[hub.PeerHub],
) -> None:
    target = start_hub(hubs)
    target.declare_queue("q.t")
    port = int(target.address.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(frames.HEADER.pack(8) + b"notjson!")
        sock.sendall(frames.HEADER.pack(100_000) + b"[" * 100_000)
        sock.sendall(frames.encode(frames.PUT, q="q.t", m={"body": "before hello"}))
        sock.sendall(
            frames.encode(frames.HELLO, id="other", addr="127.0.0.1:1", bindings=[], peers=[])
        )
        sock.sendall(frames.encode(frames.PUT, q="q.t", m={"body": "ok"}))
        wait_until(lambda: target.size("q.t") == 1, 10, message="the good frame")
    assert target.dropped_frames == 3
    assert target.get("q.t") == {"body": "ok"}


def test_kombu_resolves_peer_urls() -> None:
    import protocol.transport  # noqa: F401  (registers the alias)

    url = f"peer://127.0.0.1:{free_port()}"
    with Connection(url) as connection:
        connection.ensure_connection(max_retries=1)
        assert connection.transport.driver_type == "peer"
        assert connection.transport.hub.address == url.removeprefix("peer://")


def test_a_restarted_peer_gets_what_was_sent_while_it_was_down(hubs: list[hub.PeerHub]) -> None:
    seed = start_hub(hubs)
    port = free_port()
    config = PeerConfig(host="127.0.0.1", port=port, bootstrap=(seed.address,), backoff_s=0.02)
    first = hub.PeerHub(config)
    first.start()
    first.declare_queue("q.node")
    first.bind("bprotocol", "node", "q.node")
    wait_until(lambda: seed.owner("q.node") == first.address, 10, message="seed learns q.node")
    first.close()
    wait_until(lambda: first.address not in seed.connected_peers(), 10, message="link down")
    seed.put("q.node", {"body": "while you were away"})

    again = hub.PeerHub(config)
    hubs.append(again)
    again.declare_queue("q.node")
    again.start()
    wait_until(lambda: again.size("q.node") == 1, 10, message="the buffered message")
    assert again.get("q.node") == {"body": "while you were away"}


def test_a_peer_gone_for_good_is_forgotten_with_its_queues(hubs: list[hub.PeerHub]) -> None:
    seed = hub.PeerHub(PeerConfig(host="127.0.0.1", port=0, backoff_s=0.02, forget_after_s=0.3))
    seed.start()
    hubs.append(seed)
    leaver = start_hub(hubs, seed.address)
    leaver.declare_queue("q.leaver")
    leaver.bind("bprotocol", "leaver", "q.leaver")
    wait_until(lambda: seed.owner("q.leaver") == leaver.address, 10, message="seed learns it")
    leaver.close()
    wait_until(lambda: leaver.address not in seed.peers, 10, message="the peer to be forgotten")
    assert seed.owner("q.leaver") is None


def test_a_bad_broker_url_is_a_clear_error_when_the_bus_is_made() -> None:
    from protocol.envelope import Codec
    from protocol.transport import Bus

    for url, words in (
        ("redis://127.0.0.1:1/0;peer://0.0.0.0:7000?bootstrap=nothost", "bootstrap"),
        ("kafka://somewhere", "not a transport URL"),
        (" ; ", "no transport URL"),
    ):
        with pytest.raises(ValidationError, match=words):
            Bus(url, "n-x", lambda envelope: None, Codec("n-x"))


def test_messages_expire_by_their_expiration_property(hubs: list[hub.PeerHub]) -> None:
    item = start_hub(hubs)
    item.declare_queue("q")
    item.put("q", {"body": "stale", "properties": {"expiration": "0"}})
    item.put("q", {"body": "bad ttl", "properties": {"expiration": "soon"}})
    item.put("q", {"body": "fresh", "properties": {"expiration": "60000"}})
    assert item.get("q")["body"] == "bad ttl"
    assert item.get("q")["body"] == "fresh"


def test_a_connection_that_never_says_hello_is_closed(hubs: list[hub.PeerHub]) -> None:
    item = hub.PeerHub(PeerConfig(host="127.0.0.1", port=0, hello_timeout_s=0.2))
    item.start()
    hubs.append(item)
    port = int(item.address.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        assert sock.recv(1) == b""  # the hub hung up


def test_no_more_links_than_max_peers(hubs: list[hub.PeerHub]) -> None:
    item = hub.PeerHub(PeerConfig(host="127.0.0.1", port=0, max_peers=2))
    item.start()
    hubs.append(item)
    item._learn([f"127.0.0.1:{free_port()}" for _ in range(5)])
    assert len(item.peers) == 2


def test_sealed_control_frames_need_the_same_secret_and_a_recent_stamp() -> None:
    body = frames.seal(b"s3cret", frames.PEERS, peers=["10.0.0.1:7000"])[4:]
    frame = frames.decode(body)
    frames.check_seal(b"s3cret", frame)
    frames.check_seal(None, frames.decode(frames.encode(frames.PEERS, peers=[])[4:]))
    for secret, tampered in (
        (b"other", frame),
        (b"s3cret", {**frame, "peers": ["6.6.6.6:7000"]}),
        (b"s3cret", {key: value for key, value in frame.items() if key != "mac"}),
    ):
        with pytest.raises(frames.FrameError, match="signature"):
            frames.check_seal(secret, tampered)
    old = frames.decode(frames.encode(frames.PEERS, peers=[], ts=0, mac="x")[4:])
    with pytest.raises(frames.FrameError):
        frames.check_seal(b"s3cret", old)


def test_only_nodes_with_the_cluster_secret_join(hubs: list[hub.PeerHub]) -> None:
    def secret_hub(secret: bytes, *bootstrap: str) -> hub.PeerHub:
        config = PeerConfig(
            host="127.0.0.1", port=0, bootstrap=bootstrap, backoff_s=0.02, secret=secret
        )
        item = hub.PeerHub(config)
        item.start()
        hubs.append(item)
        return item

    seed = secret_hub(b"ours")
    friend = secret_hub(b"ours", seed.address)
    stranger = secret_hub(b"theirs", seed.address)
    for item, queue in ((friend, "q.friend"), (stranger, "q.stranger")):
        item.declare_queue(queue)
        item.bind("bprotocol", queue, queue)
    wait_until(lambda: seed.owner("q.friend") == friend.address, 10, message="the friend")
    wait_until(lambda: seed.dropped_frames >= 1, 10, message="the stranger's HELLO dropped")
    assert seed.owner("q.stranger") is None


def test_a_bus_passes_its_cluster_secret_to_peer_links() -> None:
    from protocol.envelope import Codec
    from protocol.transport import Bus, BusOptions

    url = f"peer://127.0.0.1:{free_port()}"
    options = BusOptions(peer_secret=b"ours")
    bus = Bus(url, "n-x", lambda envelope: None, Codec("n-x"), options)
    bus.start()
    try:
        hubs_in_use = [h for h, _ in hub._hubs.values() if h.address == url.removeprefix("peer://")]
        assert [h.config.secret for h in hubs_in_use] == [b"ours"]
    finally:
        bus.close()
