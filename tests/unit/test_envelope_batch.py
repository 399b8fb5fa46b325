"""Several messages to one node in one ``Batch`` envelope: encoded with
:meth:`Codec.encode_many`, handed back one by one, in order, by :meth:`Codec.decode_all`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol import envelope as envelope_module
from protocol.envelope import BATCH, PROTOCOL_VERSION, Codec
from protocol.errors import MessageError
from protocol.identity import NodeIdentity
from protocol.messages import (
    WIRE_NAMES,
    BidAccepted,
    BidResult,
    CancelExecution,
    Heartbeat,
    Message,
    ShutdownNotice,
)
from tests.support.identities import checking_codec, signed_codec

MESSAGES: list[Message] = [
    BidResult(execution_id="e-1", job_id="j-1", accepted=True),
    BidAccepted(execution_id="e-2", job_id="j-2"),
    Heartbeat(node_id="n-a", seq=7, executions=["e-1"]),
    CancelExecution(execution_id="e-3", job_id="j-3", reason="stopped"),
]


def batch_body(items: Any, **fields: Any) -> bytes:
    """A hand-made, unsigned ``Batch`` envelope around ``items``."""
    body = {
        "Version": PROTOCOL_VERSION,
        "Type": BATCH,
        "ID": "m-batch",
        "Sender": "n-a",
        "SentAt": 123,
        "Payload": {"Messages": items},
    }
    body.update(fields)
    return json.dumps(body).encode()


def item(message: Message) -> dict[str, Any]:
    return {"Type": WIRE_NAMES[type(message)], "Payload": message.to_wire()}


def test_several_messages_travel_in_one_envelope_and_come_back_in_order() -> None:
    bodies = Codec("n-a").encode_many(MESSAGES)
    assert len(bodies) == 1
    assert json.loads(bodies[0])["Type"] == BATCH
    envelopes = Codec("n-b").decode_all(bodies[0])
    assert [e.payload for e in envelopes] == MESSAGES
    assert [type(e.payload) for e in envelopes] == [type(m) for m in MESSAGES]
    assert [e.type for e in envelopes] == [
        "BidResult",
        "BidAccepted",
        "Heartbeat",
        "CancelExecution",
    ]


def test_every_message_of_a_batch_has_the_batch_sender_and_an_id_of_its_own() -> None:
    body = Codec("n-a").encode_many(MESSAGES[:3])[0]
    outer = json.loads(body)
    envelopes = Codec("n-b").decode_all(body)
    assert {e.sender for e in envelopes} == {"n-a"}
    assert {e.sent_at for e in envelopes} == {outer["SentAt"]}
    assert [e.id for e in envelopes] == [f"{outer['ID']}.{i}" for i in range(3)]


def test_a_single_message_is_sent_as_itself_and_decodes_either_way() -> None:
    codec = Codec("n-a")
    bodies = codec.encode_many(MESSAGES[:1])
    assert len(bodies) == 1
    assert json.loads(bodies[0])["Type"] == "BidResult"
    assert [e.payload for e in codec.decode_all(bodies[0])] == MESSAGES[:1]
    assert codec.decode(bodies[0]).payload == MESSAGES[0]
    assert [e.payload for e in codec.decode_all(codec.encode(MESSAGES[1]))] == [MESSAGES[1]]


def test_decode_refuses_a_batch_of_several() -> None:
    body = Codec("n-a").encode_many(MESSAGES[:2])[0]
    with pytest.raises(MessageError, match="expected one message, got a batch"):
        Codec("n-b").decode(body)


def test_decode_refuses_a_batch_of_one_too() -> None:
    codec = Codec("n-a")
    item = json.loads(codec.encode(MESSAGES[0]))
    one = batch_body([{"Type": item["Type"], "Payload": item["Payload"]}])
    assert [e.payload for e in Codec("n-b").decode_all(one)] == MESSAGES[:1]
    with pytest.raises(MessageError, match="expected one message, got a batch"):
        Codec("n-b").decode(one)


def test_nothing_to_send_makes_no_envelope() -> None:
    assert Codec("n-a").encode_many([]) == []


def test_an_empty_batch_decodes_to_no_messages() -> None:
    codec = Codec("n-b")
    assert codec.decode_all(batch_body([])) == []
    assert codec.skipped == 0
    with pytest.raises(MessageError, match="expected one message"):
        codec.decode(batch_body([]))


def test_a_batch_closes_at_its_size_limit_and_order_is_kept_across_envelopes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes = [len(json.dumps(item(m), separators=(",", ":"))) for m in MESSAGES]
    # room for the first two items together, then not for a third
    monkeypatch.setattr(envelope_module, "BATCH_MAX_BYTES", sizes[0] + sizes[1])
    codec = Codec("n-a")
    bodies = codec.encode_many(MESSAGES)
    assert len(bodies) > 1
    types = [json.loads(body)["Type"] for body in bodies]
    assert types[0] == BATCH
    decoded = [e.payload for body in bodies for e in codec.decode_all(body)]
    assert decoded == MESSAGES


def test_a_message_larger_than_the_limit_still_travels_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(envelope_module, "BATCH_MAX_BYTES", 10)
    codec = Codec("n-a")
    bodies = codec.encode_many(MESSAGES[:3])
    assert [json.loads(body)["Type"] for body in bodies] == [
        "BidResult",
        "BidAccepted",
        "Heartbeat",
    ]
    assert [codec.decode(body).payload for body in bodies] == MESSAGES[:3]


def test_a_signed_batch_is_checked_once_for_all_its_messages() -> None:
    sender = NodeIdentity.generate()
    body = signed_codec(sender).encode_many(MESSAGES)[0]
    assert [e.payload for e in checking_codec().decode_all(body)] == MESSAGES
    with pytest.raises(MessageError, match="not admitted"):
        checking_codec("bct-the-token-of-another-cluster").decode_all(body)
    tampered = body.replace(b'"Accepted":true', b'"Accepted":false', 1)
    assert tampered != body
    with pytest.raises(MessageError, match="bad signature"):
        checking_codec().decode_all(tampered)


def test_a_truncated_batch_is_a_message_error() -> None:
    body = Codec("n-a").encode_many(MESSAGES)[0]
    for cut in (1, len(body) // 2, len(body) - 1):
        with pytest.raises(MessageError, match="not JSON"):
            Codec("n-b").decode_all(body[:cut])


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "messages",
        {},
        {"Messages": None},
        {"Messages": {"Type": "BidResult"}},
        {"Messages": "BidResult"},
    ],
)
def test_a_batch_without_a_list_of_messages_is_a_message_error(payload: Any) -> None:
    body = json.loads(batch_body([]))
    body["Payload"] = payload
    with pytest.raises(MessageError, match=r"Payload\.Messages is missing or not a list"):
        Codec("n-b").decode_all(json.dumps(body).encode())


def test_a_batch_with_a_bad_outer_field_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="envelope field Sender"):
        Codec("n-b").decode_all(batch_body([item(MESSAGES[0])], Sender=None))
    with pytest.raises(MessageError, match="unsupported protocol version"):
        Codec("n-b").decode_all(batch_body([item(MESSAGES[0])], Version=2))


def test_bad_items_are_skipped_and_the_good_ones_delivered_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [MESSAGES[0], MESSAGES[2], ShutdownNotice(node_id="n-a")]
    items = [
        item(good[0]),
        "not a message",
        {"Type": "Gossip", "Payload": {}},  # unknown type
        {"Type": "BidResult", "Payload": {"ExecutionID": "e"}},  # fails validation
        {"Type": BATCH, "Payload": {"Messages": [item(good[1])]}},  # nested batch
        item(good[1]),
        {"Payload": good[2].to_wire()},  # no type
        ["BidResult"],
        item(good[2]),
    ]
    codec = Codec("n-b")
    with caplog.at_level("WARNING", logger="bacalao.transport"):
        envelopes = codec.decode_all(batch_body(items))
    assert [e.payload for e in envelopes] == good
    assert [e.id for e in envelopes] == ["m-batch.0", "m-batch.5", "m-batch.8"]
    assert codec.skipped == 6
    dropped = [r.getMessage() for r in caplog.records if "event=message_dropped" in r.getMessage()]
    assert len(dropped) == 6
    assert "id=m-batch.1" in dropped[0]


def test_a_batch_of_only_bad_items_decodes_to_nothing_rather_than_raising() -> None:
    codec = Codec("n-b")
    assert codec.decode_all(batch_body([1, None, {"Type": "Nope"}])) == []
    assert codec.skipped == 3
