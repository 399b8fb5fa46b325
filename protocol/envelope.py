"""The versioned envelope every bprotocol message travels in, and its JSON codec.

``{Version, Type, ID, Sender, SentAt, Payload}``, framed and signed by the sender's key when
the node has one (:mod:`protocol.signing`), or sealed to its recipient when that is one node
whose agreement key is known (:mod:`protocol.sealing`). Decoding never raises anything but
:class:`MessageError`, so a node can log and drop whatever arrives malformed.

Several messages to one node may travel in one envelope of type ``Batch`` (payload
``{Messages: [{Type, Payload}, ...]}``), signed once: one publish and one broker round trip
for many asks or replies. :meth:`Codec.decode_all` hands back one :class:`Envelope` per
message, in order, with the batch's sender; an item that does not validate is skipped
(``Codec.skipped`` counts it) and the rest are delivered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from protocol.errors import MessageError
from protocol.ids import new_message_id, now_ns
from protocol.messages import MESSAGE_TYPES, WIRE_NAMES, Message
from protocol.sealing import SEALED_MAGIC
from protocol.signing import MAGIC, Signer, Verifier, load_object, split
from protocol.wire import STORED, validation_error

log = logging.getLogger("bacalao.transport")

PROTOCOL_VERSION = 1
CONTENT_TYPE = "application/x-bacalao-bprotocol+json"
BATCH = "Batch"
# A batch closes once its payloads reach this size (a job may carry megabytes of inline
# data); a single larger message still travels, alone.
BATCH_MAX_BYTES = 1 << 20


_JSON = json.JSONEncoder(separators=(",", ":"))


def _json(value: Any) -> str:
    """Compact JSON, as every envelope is written."""
    return _JSON.encode(value)


def _payload_json(message: Message) -> str:
    """The message's wire form as compact JSON, serialised by pydantic-core in one step (a
    quarter of the time of ``to_wire()`` then ``json``; non-ASCII text stays UTF-8)."""
    return message.model_dump_json(by_alias=True)


@dataclass(frozen=True)
class Envelope:
    type: str
    id: str
    sender: str
    sent_at: int
    payload: Message
    version: int = PROTOCOL_VERSION


class Codec:
    """Encodes messages into envelopes and back.

    With a ``signer`` every envelope leaves signed by the node's key (the sender is then the
    key's node ID), or sealed when it is addressed ``to`` a node the signer can seal to; with
    a ``verifier`` only signed or sealed envelopes from admitted nodes, not seen before, are
    decoded (:mod:`protocol.signing`).
    """

    def __init__(
        self,
        sender: str,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        if signer is not None and signer.identity.node_id != sender:
            owner = signer.identity.node_id
            raise ValueError(f"sender {sender!r} is not the signing key's ({owner})")
        self.sender = sender
        self.signer = signer
        self.verifier = verifier
        self.skipped = 0  # batch items dropped as malformed

    def encode(self, message: Message, to: str | None = None) -> bytes:
        """``message`` in an envelope; ``to``: the one node it is for (None: a broadcast)."""
        return self._frame(WIRE_NAMES[type(message)], _payload_json(message), to)

    def encode_many(self, messages: Sequence[Message], to: str | None = None) -> list[bytes]:
        """``messages`` (to one node, ``to``) in as few envelopes as :data:`BATCH_MAX_BYTES`
        allows: one for a single message, ``Batch`` envelopes for more, order kept."""
        if len(messages) == 1:
            return [self.encode(messages[0], to)]
        bodies: list[bytes] = []
        items: list[tuple[str, str]] = []  # (wire type, payload JSON)
        size = 0
        for message in messages:
            item = (WIRE_NAMES[type(message)], _payload_json(message))
            item_size = len(item[0]) + len(item[1])
            if items and size + item_size > BATCH_MAX_BYTES:
                bodies.append(self._frame_items(items, to))
                items, size = [], 0
            items.append(item)
            size += item_size
        if items:
            bodies.append(self._frame_items(items, to))
        return bodies

    def _frame_items(self, items: list[tuple[str, str]], to: str | None) -> bytes:
        if len(items) == 1:
            return self._frame(*items[0], to)
        # Each payload is JSON already: the batch is spliced from them, not encoded again.
        listed = ",".join(
            f'{{"Type":{_json(kind)},"Payload":{payload}}}' for kind, payload in items
        )
        return self._frame(BATCH, '{"Messages":[' + listed + "]}", to)

    def _frame(self, wire_type: str, payload_json: str, to: str | None) -> bytes:
        """The envelope around ``payload_json``: the same bytes as ``json.dumps`` of the whole
        envelope with ``Payload`` last."""
        fields: dict[str, Any] = {
            "Version": PROTOCOL_VERSION,
            "Type": wire_type,
            "ID": new_message_id(),
            "Sender": self.sender,
            "SentAt": now_ns(),
        }
        if to is not None:
            fields["To"] = to  # signed with the rest: it cannot be taken to another node
        head = _json(fields)
        encoded = (head[:-1] + ',"Payload":' + payload_json + "}").encode()
        return encoded if self.signer is None else self.signer.frame(encoded, to)

    def decode(self, data: bytes | str) -> Envelope:
        """One message; a ``Batch`` envelope is a :class:`MessageError` here."""
        try:
            body = self._open(data)
        except RecursionError:
            raise MessageError("message is nested too deeply") from None
        wire_type = str(body["Type"])
        if wire_type == BATCH:
            raise MessageError("expected one message, got a batch")
        return self._envelope(body, wire_type, body.get("Payload"), str(body["ID"]))

    def decode_all(self, data: bytes | str) -> list[Envelope]:
        """Every message in ``data``: one, or each item of a batch."""
        try:
            return self._decode(data)
        except RecursionError:
            raise MessageError("message is nested too deeply") from None

    def _decode(self, data: bytes | str) -> list[Envelope]:
        body = self._open(data)
        wire_type = str(body["Type"])
        if wire_type != BATCH:
            return [self._envelope(body, wire_type, body.get("Payload"), str(body["ID"]))]
        payload = body.get("Payload")
        items = payload.get("Messages") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise MessageError("Batch: Payload.Messages is missing or not a list")
        envelopes = []
        for index, item in enumerate(items):
            item_id = f"{body['ID']}.{index}"
            try:
                if not isinstance(item, dict) or str(item.get("Type")) == BATCH:
                    raise MessageError(f"Batch: item {index} is not a message")
                item_type = str(item.get("Type"))
                envelopes.append(self._envelope(body, item_type, item.get("Payload"), item_id))
            except MessageError as exc:
                self.skipped += 1
                log.warning("event=message_dropped id=%s reason=%r", item_id, str(exc))
        return envelopes

    def _open(self, data: bytes | str) -> dict[str, Any]:
        """The envelope's checked outer fields (version, type, authentication, identity)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if self.verifier is not None:
            body = self.verifier.open(raw, recipient=self.sender)
        else:
            if raw.startswith(MAGIC):  # signed, but this node checks no signatures
                _, raw = split(raw)
            elif raw.startswith(SEALED_MAGIC):
                raise MessageError("a sealed message, but this node has no key to open it")
            body = load_object(raw)
        version = body.get("Version")
        if version != PROTOCOL_VERSION:
            raise MessageError(f"unsupported protocol version {version!r}")
        wire_type = body.get("Type")
        if wire_type != BATCH and str(wire_type) not in MESSAGE_TYPES:
            raise MessageError(f"unknown message type {wire_type!r}")
        for key, kind in (("ID", str), ("Sender", str), ("SentAt", int)):
            if not isinstance(body.get(key), kind):
                raise MessageError(f"envelope field {key} is missing or not a {kind.__name__}")
        return body

    @staticmethod
    def _envelope(body: dict[str, Any], wire_type: str, payload: Any, message_id: str) -> Envelope:
        message_class = MESSAGE_TYPES.get(wire_type)
        if message_class is None:
            raise MessageError(f"unknown message type {wire_type!r}")
        try:
            # A job travels as the requester stored it: rules added since must not make a
            # job accepted earlier undeliverable (the receiver still checks what it runs).
            message = message_class.model_validate(payload, context=STORED)
        except PydanticValidationError as exc:
            raise MessageError(f"{wire_type}: {validation_error(exc, 'Payload')}") from None
        return Envelope(
            type=wire_type,
            id=message_id,
            sender=body["Sender"],
            sent_at=body["SentAt"],
            payload=message,
            version=PROTOCOL_VERSION,
        )
