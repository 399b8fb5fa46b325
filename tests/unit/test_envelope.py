from __future__ import annotations

import json

import pytest

from protocol.envelope import Codec
from protocol.errors import MessageError
from protocol.messages import BidResult


def test_round_trip_keeps_type_sender_and_payload() -> None:
    codec = Codec("n-a")
    envelope = codec.decode(
        codec.encode(BidResult(execution_id="e-1", job_id="j-1", accepted=True))
    )
    assert envelope.type == "BidResult"
    assert envelope.sender == "n-a"
    assert envelope.payload == BidResult(execution_id="e-1", job_id="j-1", accepted=True)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\x00", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"Version": 1, "Meta": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"Version": 7}', "unsupported protocol version"),
        (b'{"Version": 1, "Type": "Gossip"}', "unknown message type"),
        (
            json.dumps(
                {
                    "Version": 1,
                    "Type": "BidResult",
                    "ID": "x",
                    "Sender": "s",
                    "SentAt": 1,
                    "Payload": {"ExecutionID": "e"},
                }
            ).encode(),
            "Payload",
        ),
        (
            json.dumps(
                {"Version": 1, "Type": "BidResult", "Sender": 5, "SentAt": 1, "Payload": {}}
            ).encode(),
            "envelope field",
        ),
    ],
)
def test_malformed_envelopes_raise_message_error(body: bytes, words: str) -> None:
    with pytest.raises(MessageError, match=words):
        Codec("n-b").decode(body)


def test_signed_envelopes_are_checked() -> None:
    message = BidResult(execution_id="e", job_id="j", accepted=False)
    signed = Codec("n-a", b"secret").encode(message)
    assert Codec("n-b", b"secret").decode(signed).payload == message
    with pytest.raises(MessageError, match="failed authentication"):
        Codec("n-b", b"other").decode(signed)
    tampered = json.loads(signed)
    tampered["Payload"]["Accepted"] = True
    with pytest.raises(MessageError, match="failed authentication"):
        Codec("n-b", b"secret").decode(json.dumps(tampered).encode())
