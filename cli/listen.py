"""Can this process listen on ``host:port``? Asked before a node starts its API, and again to
explain why a server did not start; every answer names the flag to change.
"""

from __future__ import annotations

import errno
import socket

from protocol.errors import ValidationError

HOST_FLAG = "--api-host"
PORT_FLAG = "--api-port"


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


def listen_problem(
    host: str, port: int, *, host_flag: str = HOST_FLAG, port_flag: str = PORT_FLAG
) -> ValidationError | None:
    """What stops a server from listening on ``host:port`` right now, or None. The probe
    binds the way uvicorn does (SO_REUSEADDR), so a port only in TIME_WAIT is not "in use"."""
    problem = unresolvable(host)
    if problem:
        return ValidationError(host_flag, problem)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OverflowError:
        return ValidationError(port_flag, f"{port} is not a port (0-65535)")
    except OSError as exc:
        return _bind_problem(exc, host, port, host_flag, port_flag)
    return None


def _bind_problem(
    exc: OSError, host: str, port: int, host_flag: str, port_flag: str
) -> ValidationError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return ValidationError(
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
