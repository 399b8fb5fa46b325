"""Sealed envelopes: a direct message only its recipient can read, and only its sender made."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import sealing, signing
from protocol.admission import ClusterToken
from protocol.envelope import Codec
from protocol.errors import MessageError
from protocol.execution import RunCommandResult
from protocol.identity import NodeIdentity
from protocol.ids import now_ns
from protocol.messages import BidResult, RunResult
from protocol.sealing import AGREEMENT_CONTEXT, SEALED_MAGIC, Agreement
from protocol.signing import MAGIC, RefusedMessageError, Signer, split
from tests.support.identities import TOKEN, checking_codec, node_codec

SECRET = "stdout-nobody-else-may-read"
RESULT = RunResult(execution_id="e-1", job_id="j-1", run_output=RunCommandResult(stdout=SECRET))
BID = BidResult(execution_id="e-2", job_id="j-1", accepted=True)


def acquainted() -> tuple[NodeIdentity, Codec, NodeIdentity, Codec]:
    """Two nodes that each accepted a (signed) broadcast of the other."""
    a, b = NodeIdentity.generate(), NodeIdentity.generate()
    codec_a, codec_b = node_codec(a), node_codec(b)
    codec_b.decode(codec_a.encode(BID))
    codec_a.decode(codec_b.encode(BID))
    return a, codec_a, b, codec_b


def refusal(codec: Codec, data: bytes) -> RefusedMessageError:
    with pytest.raises(RefusedMessageError) as refused:
        codec.decode_all(data)
    return refused.value


def test_a_message_to_a_known_peer_is_sealed_and_opens_there_only() -> None:
    a, codec_a, b, codec_b = acquainted()
    data = codec_a.encode(RESULT, to=b.node_id)
    assert data.startswith(SEALED_MAGIC)
    assert SECRET.encode() not in data
    assert b"j-1" not in data
    envelope = codec_b.decode(data)
    assert (envelope.sender, envelope.payload) == (a.node_id, RESULT)
    batch = codec_b.encode_many([BID, RESULT], to=a.node_id)
    assert len(batch) == 1
    assert batch[0].startswith(SEALED_MAGIC)
    assert [e.payload for e in codec_a.decode_all(batch[0])] == [BID, RESULT]


def test_a_third_node_cannot_open_it_even_knowing_both() -> None:
    a, codec_a, b, _ = acquainted()
    third = node_codec(NodeIdentity.generate())
    third.decode(node_codec(a).encode(BID))  # it knows a's agreement key as well
    data = codec_a.encode(RESULT, to=b.node_id)
    assert "does not open" in str(refusal(third, data))
    with pytest.raises(MessageError, match="no key to open it"):
        Codec("n-thief").decode(data)
    with pytest.raises(MessageError, match="no agreement key to open it"):
        checking_codec().decode(data)


def test_unknown_recipients_and_broadcasts_get_signed_plaintext() -> None:
    _a, codec_a, _, _ = acquainted()
    assert codec_a.encode(RESULT, to="n-not-heard-from").startswith(MAGIC)
    assert codec_a.encode(RESULT).startswith(MAGIC)
    assert node_codec(NodeIdentity.generate()).decode(codec_a.encode(RESULT)).payload == RESULT


def test_a_tampered_sealed_message_is_refused() -> None:
    _a, codec_a, b, codec_b = acquainted()
    data = codec_a.encode(RESULT, to=b.node_id)
    body = bytearray(data)
    body[-1] ^= 1
    assert "does not open" in str(refusal(codec_b, bytes(body)))
    header, sealed = split(data, SEALED_MAGIC)
    header["Note"] = "added on the way"  # the header line is authenticated
    line = SEALED_MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"
    assert "does not open" in str(refusal(codec_b, line + sealed))


def test_a_forged_agreement_key_is_refused() -> None:
    """A forger cannot seal in a victim's name with its own agreement key: the victim's
    signing key never vouched for it."""
    victim, _, b, codec_b = acquainted()
    forger = NodeIdentity.generate()
    codec_forger = node_codec(forger)
    codec_forger.decode(node_codec(b).encode(BID))
    header, sealed = split(codec_forger.encode(RESULT, to=b.node_id), SEALED_MAGIC)
    header["Key"] = base64.b64encode(victim.public_key).decode()
    # The victim's credential travels in its frames' headers, so a forger can copy it.
    header["Credential"] = base64.b64encode(
        ClusterToken(TOKEN).credential(victim.public_key)
    ).decode()
    line = SEALED_MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"
    assert "not vouched for" in str(refusal(codec_b, line + sealed))
    # Nor does a signed frame teach a receiver a key its sender did not vouch for.
    signed = node_codec(victim).encode(BID)
    header, rest = split(signed)
    header["Agreement"] = base64.b64encode(Agreement(forger).public_key).decode()
    line = MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"
    assert "not vouched for" in str(refusal(node_codec(b), line + rest))


def keys_of(identity: NodeIdentity) -> tuple[bytes, bytes]:
    return identity.public_key, Agreement(identity).public_key


def sealed_by_hand(sealer: NodeIdentity, body: bytes, to: NodeIdentity) -> bytes:
    """A frame admitted ``sealer`` sealed to ``to``, carrying ``body`` whatever it is."""
    agreement = Agreement(sealer)
    agreement.learn(to.node_id, *keys_of(to))
    credential = ClusterToken(TOKEN).credential(sealer.public_key)
    return Signer(sealer, credential, agreement).frame(body, to=to.node_id)


def sealed_as(forger: NodeIdentity, body: dict[str, object], to: NodeIdentity) -> bytes:
    return sealed_by_hand(forger, json.dumps(body).encode(), to)


def test_an_admitted_node_cannot_seal_in_another_nodes_name() -> None:
    _, _, b, codec_b = acquainted()
    forger, victim = NodeIdentity.generate(), NodeIdentity.generate()
    body: dict[str, object] = {
        "Version": 1,
        "Type": "BidResult",
        "ID": "m-1",
        "Sender": victim.node_id,
        "SentAt": now_ns(),
        "Payload": BID.to_wire(),
    }
    assert "names another node" in str(refusal(codec_b, sealed_as(forger, body, b)))
    body["Sender"] = forger.node_id  # the same frame in its own name is accepted
    assert codec_b.decode(sealed_as(forger, body, b)).payload == BID


def test_a_sealed_message_sent_back_or_on_does_not_open() -> None:
    """The key is one direction's: a frame reflected to its sender, or passed on to a third
    node that knows the sender, opens nowhere but at its recipient."""
    _, codec_a, b, _ = acquainted()
    data = codec_a.encode(RESULT, to=b.node_id)
    assert "own agreement key" in str(refusal(codec_a, data))
    third = node_codec(NodeIdentity.generate())
    third.decode(codec_a.encode(BID))
    codec_a.decode(third.encode(BID))
    assert codec_a.encode(RESULT, to=third.sender).startswith(SEALED_MAGIC)
    assert "does not open" in str(refusal(third, data))


def test_a_refused_frame_teaches_no_key() -> None:
    _, _, _, codec_b = acquainted()
    outsider = node_codec(NodeIdentity.generate(), token="bct-some-other-clusters-token")
    refusal(codec_b, outsider.encode(BID))
    assert codec_b.encode(RESULT, to=outsider.sender).startswith(MAGIC)


def test_a_forged_certificate_is_not_remembered() -> None:
    identity = NodeIdentity.generate()
    agreement = Agreement(NodeIdentity.generate())
    signing_key, exchange_key = keys_of(identity)
    certificate = identity.sign(AGREEMENT_CONTEXT + exchange_key)
    assert not agreement.vouched(signing_key, exchange_key, b"\x00" * 64)
    assert not agreement.vouched(signing_key, exchange_key, b"\x00" * 64)
    assert len(agreement._vouched) == 0
    assert agreement.vouched(signing_key, exchange_key, certificate)
    assert len(agreement._vouched) == 1


def test_a_certified_low_order_key_is_never_sealed_to() -> None:
    """An admitted node that vouches for an unusable X25519 key (a low-order point, or the
    receiver's own key) is answered signed, and sending to it does not fail."""
    a = NodeIdentity.generate()
    for unusable in (bytes(32), Agreement(a).public_key):
        sender = NodeIdentity.generate()
        codec_a = node_codec(a)
        plain = node_codec(sender).encode(BID)
        header, rest = split(plain)
        header["Agreement"] = base64.b64encode(unusable).decode()
        header["Certificate"] = base64.b64encode(sender.sign(AGREEMENT_CONTEXT + unusable)).decode()
        line = MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"
        assert codec_a.decode(line + rest).payload == BID
        assert codec_a.encode(RESULT, to=sender.node_id).startswith(MAGIC)


def test_a_strangers_frame_costs_no_signature_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission is checked before any public-key work, so a flood from strangers is cheap."""
    _, _, b, codec_b = acquainted()
    outsider = node_codec(NodeIdentity.generate(), token="bct-some-other-clusters-token")
    outsider.signer.agreement.learn(b.node_id, *keys_of(b))  # type: ignore[union-attr]
    frames = [outsider.encode(BID), outsider.encode(RESULT, to=b.node_id)]
    assert frames[1].startswith(SEALED_MAGIC)

    def no_public_key_work(*_: object) -> bool:
        raise AssertionError("a stranger's frame was checked cryptographically")

    monkeypatch.setattr(signing, "verify", no_public_key_work)
    monkeypatch.setattr(sealing, "verify", no_public_key_work)
    monkeypatch.setattr(Agreement, "_pair", no_public_key_work)
    for data in frames:
        assert "not admitted" in str(refusal(codec_b, data))


def test_a_replayed_sealed_message_is_refused() -> None:
    _, codec_a, b, codec_b = acquainted()
    data = codec_a.encode(RESULT, to=b.node_id)
    codec_b.decode(data)
    assert "replayed" in str(refusal(codec_b, data))


def test_a_stranger_that_seals_is_still_not_admitted() -> None:
    _, _, b, codec_b = acquainted()
    stranger = NodeIdentity.generate()
    outsider = node_codec(stranger, token="bct-some-other-clusters-token")
    outsider.signer.agreement.learn(b.node_id, *keys_of(b))  # type: ignore[union-attr]
    data = outsider.encode(RESULT, to=b.node_id)
    assert data.startswith(SEALED_MAGIC)
    assert "not admitted" in str(refusal(codec_b, data))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["Key", "Credential", "Agreement", "Certificate", "Nonce", "X"]),
        st.one_of(st.text(), st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())),
    ),
    st.binary(max_size=80),
)
def test_a_hostile_sealed_frame_is_a_message_error(header: dict[str, str], tail: bytes) -> None:
    codec = node_codec(NodeIdentity.generate())
    for data in (
        SEALED_MAGIC + json.dumps(header).encode() + b"\n" + tail,
        SEALED_MAGIC + tail,
    ):
        with pytest.raises(MessageError):
            codec.decode_all(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
SEALER, RECIPIENT = NodeIdentity.generate(), NodeIdentity.generate()
RECEIVER = node_codec(RECIPIENT)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.integers(1, 5000).map(lambda depth: b"[" * depth),
        st.fixed_dictionaries(
            {"Sender": st.just(SEALER.node_id)},
            optional={
                "Version": JSON_VALUES,
                "Type": st.one_of(JSON_VALUES, st.sampled_from(["Batch", "BidResult"])),
                "ID": JSON_VALUES,
                "SentAt": st.one_of(JSON_VALUES, st.builds(now_ns)),
                "Payload": JSON_VALUES,
            },
        ).map(lambda body: json.dumps(body).encode()),
    )
)
def test_whatever_an_admitted_node_seals_is_decoded_or_a_message_error(body: bytes) -> None:
    """A frame that opens (made by an admitted peer) may still carry anything at all."""
    with contextlib.suppress(MessageError):
        RECEIVER.decode_all(sealed_by_hand(SEALER, body, RECIPIENT))
