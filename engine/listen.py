"""Claims the API's listening address before anything starts, so a port in use fails at once.

granian binds with SO_REUSEPORT on Linux, so a second granian on a port another one already holds
does not fail: the two share it and the kernel splits connections between them. A second
`mittr serve` would print "listening" and quietly serve half the traffic. So the check binds the way
an exclusive server does (SO_REUSEADDR only: leftover TIME_WAIT connections are fine, any other
socket on the port is not), and a bound socket that never listens then holds the port for this
process's life: our own granian (SO_REUSEPORT, same user) still binds beside it, while the check of
any other Mittr, and any server that does not share ports, gets "address already in use".
What is left: a server that binds between the check and the hold (microseconds). One that does not
share ports makes our granian exit, which the supervisor reports; only another Mittr checking in
that same instant could still end up sharing the port.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any


class ListenError(Exception):
    """The address cannot be listened on; the message is meant for the user as is."""


def describe(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reason(exc: OSError) -> str:
    """'address already in use' rather than '[Errno 98] Address already in use'."""
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return text[:1].lower() + text[1:]


@dataclass
class Reservation:
    """Keeps the port; `release` lets it go (closing the process does too)."""

    guard: socket.socket | None

    def release(self) -> None:
        if self.guard is not None:
            self.guard.close()
            self.guard = None


def _address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {describe(host, port)}: {reason(exc)}") from exc
    return family, tuple(addr)


def probe(host: str, port: int) -> None:
    """Raise ListenError unless nothing else is bound to host:port right now."""
    family, addr = _address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise ListenError(f"cannot listen on {describe(host, port)}: {reason(exc)}") from exc


def reserve(host: str, port: int) -> Reservation:
    """Check host:port is free and hold it. The hold is best effort (only where SO_REUSEPORT
    exists and the bind succeeds); the supervisor still watches the API's own bind."""
    probe(host, port)
    family, addr = _address(host, port)
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        return Reservation(None)
    guard = socket.socket(family, socket.SOCK_STREAM)   # not inheritable: children never hold it
    try:
        guard.setsockopt(socket.SOL_SOCKET, option, 1)
        guard.bind(addr)
    except OSError:
        guard.close()
        return Reservation(None)
    return Reservation(guard)
