"""Can this process listen on ``host:port``? Asked before a node starts its API, and again to
bind the sockets its servers listen on; every answer names the flag to change.

A port the user did not choose (a default) that another program holds is no reason to stop:
:func:`bind_default` then listens on a free port instead and says so, which lets several
nodes started with the same command share one host.
"""

from __future__ import annotations

import errno
import socket

from protocol.errors import ValidationError

HOST_FLAG = "--api-host"
PORT_FLAG = "--api-port"
API_PORT_ENV = "BACALAO_API_PORT"


class PortInUseError(ValidationError):
    """Another socket already listens on the port: the one problem a free port solves."""


def unresolvable(host: str) -> str:
    """Why ``host`` cannot be listened on at all ("" when it resolves): no such name or
    malformed address (``999.1.1.1``)."""
    if not host.strip():
        return "is empty (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return f"cannot resolve {host!r} to an address of this machine ({reason})"
    return ""


def bind(
    host: str, port: int, *, host_flag: str = HOST_FLAG, port_flag: str = PORT_FLAG
) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: a free one), bound the way uvicorn
    binds (SO_REUSEADDR, so a port only in TIME_WAIT is free); the caller owns it. When it
    cannot be had, the ValidationError says why and names the flag to change (PortInUseError
    when another socket listens there)."""
    problem = unresolvable(host)
    if problem:
        raise ValidationError(host_flag, problem)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OverflowError:
        raise ValidationError(port_flag, f"{port} is not a port (0-65535)") from None
    except OSError as exc:
        raise _bind_problem(exc, host, port, host_flag, port_flag) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()  # at once: a second SO_REUSEADDR bind of the port now fails
    except OverflowError:
        sock.close()
        raise ValidationError(port_flag, f"{port} is not a port (0-65535)") from None
    except OSError as exc:
        sock.close()
        raise _bind_problem(exc, host, port, host_flag, port_flag) from None
    return sock


def bind_default(
    host: str,
    port: int,
    *,
    fallback: bool,
    host_flag: str = HOST_FLAG,
    port_flag: str = PORT_FLAG,
) -> tuple[socket.socket, bool]:
    """:func:`bind`, and whether the socket listens on a free port instead of ``port``: with
    ``fallback`` (``port`` is a default, not the user's choice) a port in use is replaced by
    a free one; any other problem (an address not of this machine...) is still an error."""
    try:
        return bind(host, port, host_flag=host_flag, port_flag=port_flag), False
    except PortInUseError:
        if not fallback or port == 0:
            raise
    return bind(host, 0, host_flag=host_flag, port_flag=port_flag), True


def bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def fallback_notice(what: str, wanted: int, port: int, flag: str) -> str:
    """The line a node prints when ``what`` listens on ``port`` because ``wanted``, its
    default, was taken."""
    return (
        f"{what}: port {wanted} is in use, listening on {port} instead "
        f"(give {flag} to choose the port)"
    )


def api_fallback_notice(wanted: int, port: int) -> str:
    """:func:`fallback_notice` for the requester's API, with how clients find it: they look
    on the default port unless told otherwise."""
    return (
        f"API: port {wanted} is in use, listening on {port} instead; point clients at it "
        f"with --api-port {port} or {API_PORT_ENV}={port}"
    )


def listen_problem(
    host: str, port: int, *, host_flag: str = HOST_FLAG, port_flag: str = PORT_FLAG
) -> ValidationError | None:
    """What stops a server from listening on ``host:port`` right now, or None (port 0 asks
    about the host alone)."""
    try:
        bind(host, port, host_flag=host_flag, port_flag=port_flag).close()
    except ValidationError as exc:
        return exc
    return None


def _bind_problem(
    exc: OSError, host: str, port: int, host_flag: str, port_flag: str
) -> ValidationError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            port_flag,
            f"{where} is already in use (another node or program listens there); "
            f"pick another {port_flag}",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ValidationError(
            host_flag, f"{host} is not an address of this machine (0.0.0.0: every interface)"
        )
    if exc.errno == errno.EACCES:
        return ValidationError(
            port_flag, f"listening on {where} is not permitted (ports below 1024 need root)"
        )
    return ValidationError(f"{host_flag}/{port_flag}", f"cannot listen on {where}: {exc.strerror}")
