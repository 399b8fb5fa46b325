"""Node identities: keys, admission by token or allow-list, signed envelopes, replays."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.admission import AllowList, AnyOf, ClusterToken, generate_token
from protocol.envelope import Codec
from protocol.errors import MessageError, ValidationError
from protocol.execution import RunCommandResult
from protocol.identity import NodeIdentity, node_id_for
from protocol.messages import BidResult, RunResult
from protocol.signing import MAGIC, RefusedMessageError, ReplayGuard, Signer, split
from tests.support.identities import TOKEN, checking_codec, signed_codec

BID = BidResult(execution_id="e-2", job_id="j-1", accepted=True)
RESULT = RunResult(execution_id="e-1", job_id="j-1", run_output=RunCommandResult())


def refusal(codec: Codec, data: bytes) -> RefusedMessageError:
    with pytest.raises(RefusedMessageError) as refused:
        codec.decode(data)
    return refused.value


# -- identity ------------------------------------------------------------------------------


def test_a_node_keeps_its_identity_across_restarts_and_its_key_is_private(
    tmp_path: Path,
) -> None:
    first = NodeIdentity.load_or_create(tmp_path / "node")
    again = NodeIdentity.load_or_create(tmp_path / "node")
    other = NodeIdentity.load_or_create(tmp_path / "other")
    assert first.node_id == again.node_id == node_id_for(first.public_key)
    assert other.node_id != first.node_id
    assert stat.S_IMODE((tmp_path / "node" / "node.key").stat().st_mode) == 0o600


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "node.key").write_bytes(b"short")
    with pytest.raises(ValueError, match=r"node\.key: a node key is 32 bytes, not 5; remove it"):
        NodeIdentity.load_or_create(tmp_path)


# -- admission -----------------------------------------------------------------------------


def test_the_token_admits_its_holders_only() -> None:
    node = NodeIdentity.generate()
    token = ClusterToken(TOKEN)
    credential = token.credential(node.public_key)
    assert token.admits(node.node_id, node.public_key, credential)
    assert not ClusterToken(TOKEN + "x").admits(node.node_id, node.public_key, credential)
    stranger = NodeIdentity.generate()
    assert not token.admits(stranger.node_id, stranger.public_key, credential)
    assert generate_token() != generate_token()
    assert len(generate_token()) >= 16


def test_a_short_token_is_refused_naming_the_flag() -> None:
    with pytest.raises(ValidationError, match="cluster-token: must be at least 16"):
        ClusterToken("short")


def test_an_allow_list_names_nodes_by_id_or_public_key() -> None:
    by_id, by_key, stranger = (NodeIdentity.generate() for _ in range(3))
    allowed = AllowList(
        [f"{by_id.node_id}  # the first", "", base64.b64encode(by_key.public_key).decode()]
    )
    assert allowed.admits(by_id.node_id, by_id.public_key, b"")
    assert allowed.admits(by_key.node_id, by_key.public_key, b"")
    assert not allowed.admits(stranger.node_id, stranger.public_key, b"")
    either = AnyOf([allowed, ClusterToken(TOKEN)])
    credential = ClusterToken(TOKEN).credential(stranger.public_key)
    assert either.admits(stranger.node_id, stranger.public_key, credential)


def test_a_bad_allow_list_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "allow"
    path.write_text("# nodes\nnot-a-node\n")
    with pytest.raises(ValidationError, match="allow-nodes line 2: 'not-a-node' is neither"):
        AllowList.from_file(path)
    with pytest.raises(ValidationError, match="allow-nodes: cannot read"):
        AllowList.from_file(tmp_path / "missing")


# -- signed envelopes ----------------------------------------------------------------------


def test_a_signed_message_from_an_admitted_node_is_delivered() -> None:
    node = NodeIdentity.generate()
    codec = checking_codec()
    envelope = codec.decode(signed_codec(node).encode(RESULT))
    assert (envelope.sender, envelope.payload) == (node.node_id, RESULT)
    batch = signed_codec(node).encode_many([RESULT, BID])
    assert [e.payload for e in codec.decode_all(batch[0])] == [
        RESULT,
        BID,
    ]


def test_an_unsigned_message_is_refused() -> None:
    refused = refusal(checking_codec(), Codec("n-victim").encode(RESULT))
    assert "unsigned message" in str(refused)


def test_a_node_without_the_token_is_refused_and_counted_once_per_sender() -> None:
    stranger = NodeIdentity.generate()
    codec = checking_codec()
    outsider = signed_codec(stranger, token="bct-some-other-clusters-token")
    first = refusal(codec, outsider.encode(RESULT))
    second = refusal(codec, outsider.encode(RESULT))
    assert "not admitted" in str(first)
    assert (first.repeat, second.repeat) == (False, True)
    assert codec.verifier is not None
    assert codec.verifier.refused[stranger.node_id] == 2


def test_a_message_naming_another_node_as_its_sender_is_refused() -> None:
    """An admitted node cannot speak for another: the key must hash to the Sender."""
    victim, forger = NodeIdentity.generate(), NodeIdentity.generate()
    body = json.loads(split(signed_codec(forger).encode(RESULT))[1])
    body["Sender"] = victim.node_id
    forged = signed_frame(forger, json.dumps(body).encode())
    assert "signing key is not the sender's" in str(refusal(checking_codec(), forged))


def test_a_tampered_message_fails_its_signature() -> None:
    node = NodeIdentity.generate()
    data = signed_codec(node).encode(RESULT)
    tampered = data.replace(b'"e-1"', b'"e-9"')
    assert tampered != data
    assert "bad signature" in str(refusal(checking_codec(), tampered))


def test_a_replayed_or_stale_message_is_refused() -> None:
    node = NodeIdentity.generate()
    codec = checking_codec(window_s=60)
    data = signed_codec(node).encode(RESULT)
    codec.decode(data)
    assert "replayed" in str(refusal(codec, data))
    guard = ReplayGuard(60)
    now = 10**18
    assert "older than the replay window" in str(guard.check("m-1", now - 61 * 10**9, now))
    assert "future" in str(guard.check("m-2", now + 3600 * 10**9, now))
    assert guard.check("m-3", now, now) is None
    assert guard.check("m-3", now, now + 10**9) is not None
    assert guard.check("m-4", now + 200 * 10**9, now + 200 * 10**9) is None
    assert len(guard) == 1, "IDs older than the window (and the skew) are forgotten"


def test_a_signed_message_to_one_node_is_refused_by_another() -> None:
    """A message taken off one node's queue and put on another's does not count there:
    ``To`` is signed with the rest (sealed messages are bound to their recipient anyway)."""
    node = NodeIdentity.generate()
    sender = signed_codec(node)
    to_elsewhere = sender.encode(RESULT, to="n-somebody-else")
    receiver = checking_codec()  # it is "n-receiver"
    assert "not to this node" in str(refusal(receiver, to_elsewhere))
    assert receiver.decode(sender.encode(RESULT, to="n-receiver")).payload == RESULT
    assert receiver.decode(sender.encode(RESULT)).payload == RESULT  # a broadcast
    moved = json.loads(split(to_elsewhere)[1])
    moved["To"] = "n-receiver"  # readdressed: the signature no longer holds
    header = to_elsewhere[: to_elsewhere.index(b"\n", len(MAGIC)) + 1]
    forged = header + json.dumps(moved, separators=(",", ":")).encode()
    assert "bad signature" in str(refusal(receiver, forged))


def test_a_node_that_checks_nothing_still_reads_signed_messages() -> None:
    node = NodeIdentity.generate()
    assert Codec("n-any").decode(signed_codec(node).encode(RESULT)).payload == RESULT


def test_a_codec_signs_only_as_its_own_key() -> None:
    with pytest.raises(ValueError, match="is not the signing key's"):
        Codec("n-someone-else", signer=Signer(NodeIdentity.generate()))


def signed_frame(identity: NodeIdentity, body: bytes) -> bytes:
    credential = ClusterToken(TOKEN).credential(identity.public_key)
    return Signer(identity, credential).frame(body)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_whatever_follows_the_magic_is_a_message_error_at_worst(tail: bytes) -> None:
    codec = checking_codec()
    for data in (MAGIC + tail, MAGIC + b'{"Key":"' + tail, tail):
        with pytest.raises(MessageError):
            codec.decode_all(data)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["Key", "Credential", "Signature", "X"]), st.text()))
def test_a_hostile_header_is_a_message_error(header: dict[str, str]) -> None:
    body = Codec("n-a").encode(RESULT)
    data = MAGIC + json.dumps(header).encode() + b"\n" + body
    with pytest.raises(MessageError):
        checking_codec().decode(data)
