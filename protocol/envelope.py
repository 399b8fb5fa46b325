"""The versioned envelope every bprotocol message travels in, and its JSON codec.

``{Version, Type, ID, Sender, SentAt, Payload, Auth}``: ``Auth`` is an HMAC-SHA256 of the rest
when the cluster shares a secret, empty otherwise. Decoding never raises anything but
:class:`MessageError`, so a node can log and drop whatever arrives malformed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from protocol.errors import MessageError
from protocol.ids import new_message_id, now_ns
from protocol.messages import MESSAGE_TYPES, WIRE_NAMES, Message
from protocol.wire import STORED, validation_error

PROTOCOL_VERSION = 1
CONTENT_TYPE = "application/x-bacalao-bprotocol+json"


@dataclass(frozen=True)
class Envelope:
    type: str
    id: str
    sender: str
    sent_at: int
    payload: Message
    version: int = PROTOCOL_VERSION


class Codec:
    """Encodes messages into envelopes and back, signing when given a secret."""

    def __init__(self, sender: str, secret: bytes | None = None) -> None:
        self.sender = sender
        self._secret = secret

    @property
    def secret(self) -> bytes | None:
        return self._secret

    def encode(self, message: Message) -> bytes:
        body: dict[str, Any] = {
            "Version": PROTOCOL_VERSION,
            "Type": WIRE_NAMES[type(message)],
            "ID": new_message_id(),
            "Sender": self.sender,
            "SentAt": now_ns(),
            "Payload": message.to_wire(),
        }
        body["Auth"] = self._sign(body)
        return json.dumps(body, separators=(",", ":")).encode()

    def decode(self, data: bytes | str) -> Envelope:
        try:
            return self._decode(data)
        except RecursionError:
            raise MessageError("message is nested too deeply") from None

    def _decode(self, data: bytes | str) -> Envelope:
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise MessageError("envelope is not a JSON object")
        version = body.get("Version")
        if version != PROTOCOL_VERSION:
            raise MessageError(f"unsupported protocol version {version!r}")
        wire_type = body.get("Type")
        message_class = MESSAGE_TYPES.get(str(wire_type))
        if message_class is None:
            raise MessageError(f"unknown message type {wire_type!r}")
        if self._secret is not None and not hmac.compare_digest(
            str(body.get("Auth", "")), self._sign(body)
        ):
            raise MessageError(f"{wire_type} from {body.get('Sender')!r} failed authentication")
        for key, kind in (("ID", str), ("Sender", str), ("SentAt", int)):
            if not isinstance(body.get(key), kind):
                raise MessageError(f"envelope field {key} is missing or not a {kind.__name__}")
        try:
            # A job travels as the requester stored it: rules added since must not make a
            # job accepted earlier undeliverable (the receiver still checks what it runs).
            payload = message_class.model_validate(body.get("Payload"), context=STORED)
        except PydanticValidationError as exc:
            raise MessageError(f"{wire_type}: {validation_error(exc, 'Payload')}") from None
        return Envelope(
            type=str(wire_type),
            id=body["ID"],
            sender=body["Sender"],
            sent_at=body["SentAt"],
            payload=payload,
            version=PROTOCOL_VERSION,
        )

    def _sign(self, body: dict[str, Any]) -> str:
        if self._secret is None:
            return ""
        unsigned = {key: value for key, value in body.items() if key != "Auth"}
        canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._secret, canonical, hashlib.sha256).hexdigest()
