from __future__ import annotations

import json

import pytest

from protocol.envelope import Codec
from protocol.errors import MessageError
from protocol.execution import Execution
from protocol.job import Job
from protocol.messages import AskForBid, BidResult
from protocol.wire import STORED


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


def test_a_job_accepted_under_earlier_rules_still_travels() -> None:
    """The requester sends jobs as it stored them; a rule added since (here: Kubernetes key
    syntax) must not make a compute node drop the ask as malformed."""
    old = {
        "ID": "j-old",
        "Constraints": [{"Key": "my key", "Operator": "=", "Values": ["x"]}],
        "Tasks": [{"Engine": {"Type": "noop"}}],
    }
    job = Job.model_validate(old, context=STORED)
    execution = Execution(id="e-1", job_id=job.id, node_id="n-c", job=job)
    codec = Codec("n-r")
    decoded = codec.decode(codec.encode(AskForBid(execution=execution)))
    assert isinstance(decoded.payload, AskForBid)
    assert decoded.payload.execution.job is not None
    assert decoded.payload.execution.job.constraints[0].key == "my key"
