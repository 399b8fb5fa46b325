"""Bearer tokens for the requester's API.

With tokens configured, every request but the liveness probes must carry
``Authorization: Bearer <token>`` naming one of them; any other is answered 401 in
Bacalhau's error shape before it reaches a route, so it changes nothing. Without tokens the
API is open, which :func:`check_exposure` allows only on a loopback address.

The dashboard's static files (:mod:`requester.api_dashboard`) are served to anyone too: a
browser cannot put a bearer token on a page it navigates to, and they hold no data (the page
asks for a token and sends it on each API call it makes).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from protocol.errors import ValidationError
from requester.api_dashboard import DASHBOARD

MIN_API_TOKEN_LENGTH = 16
# What a load balancer or an orchestrator probes without credentials; they reveal nothing.
OPEN_PATHS = frozenset({"/api/v1/agent/alive", "/api/v1/healthz", "/api/v1/livez"})


def is_open(path: str) -> bool:
    """Whether ``path`` is served without a token: a probe, or the dashboard's files."""
    return path in OPEN_PATHS or path == DASHBOARD or path.startswith(DASHBOARD + "/")


def check_token(token: str, field: str) -> str:
    token = token.strip()
    if len(token) < MIN_API_TOKEN_LENGTH:
        raise ValidationError(field, f"a token must be at least {MIN_API_TOKEN_LENGTH} characters")
    if any(ch.isspace() for ch in token):
        raise ValidationError(field, "a token cannot contain whitespace")
    return token


def read_tokens_file(path: Path) -> list[str]:
    """One token per line; blank lines and ``#`` comments are skipped."""
    field = "api-tokens-file"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(field, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValidationError(field, f"{path} is not UTF-8 text") from None
    tokens = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            tokens.append(check_token(line, f"{field} line {number}"))
    if not tokens:
        raise ValidationError(field, f"{path} names no token")
    return tokens


def api_tokens(given: Iterable[str], tokens_file: Path | None) -> tuple[str, ...]:
    """The tokens of ``--api-token`` (each checked) and of ``--api-tokens-file``."""
    tokens = [check_token(token, "api-token") for token in given if token.strip()]
    if tokens_file is not None:
        tokens += read_tokens_file(tokens_file)
    return tuple(dict.fromkeys(tokens))


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def check_exposure(host: str, tokens: tuple[str, ...], insecure: bool) -> None:
    """An API reachable from other machines must ask for a token (or be told not to)."""
    if tokens or insecure or is_loopback(host):
        return
    raise ValidationError(
        "api-host",
        f"{host} is reachable from other machines, and the API has no token: give "
        "--api-token (or BACALAO_API_TOKEN, or --api-tokens-file), or --insecure to serve it "
        "to anyone who can connect",
    )


class BearerTokens:
    """ASGI middleware: 401 for any HTTP request without one of ``tokens``."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str]) -> None:
        self.app = app
        self._tokens = tuple(token.encode() for token in tokens)
        if not self._tokens:
            raise ValueError("BearerTokens needs at least one token")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = _bearer(scope)
        if given is not None and self._known(given):
            await self.app(scope, receive, send)
            return
        problem = (
            "this requester needs an API token"
            if given is None
            else "the API token given is not one this requester accepts"
        )
        hint = "send 'Authorization: Bearer <token>' (the CLI sends BACALAO_API_TOKEN)"
        body = json.dumps({"Code": 401, "Message": f"{problem}: {hint}"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="bacalao"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _known(self, given: bytes) -> bool:
        # Every token is compared, so the time taken says nothing about which one is close.
        found = False
        for token in self._tokens:
            found |= hmac.compare_digest(given, token)
        return found


def _bearer(scope: Scope) -> bytes | None:
    """The bearer token of the request's ``Authorization`` header; None without one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            given = given.strip()
            return given if scheme.lower() == b"bearer" and given else None
    return None
