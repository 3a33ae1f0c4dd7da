"""The API address is checked and held before anything starts: a port in use, even by a server
that shares ports the way granian does, is refused; our own granian can still bind beside the hold;
TIME_WAIT leftovers of a previous run are no reason to refuse."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from engine.listen import ListenError, Reservation, describe, probe, reserve
from engine.supervisor import ApiStart, Child, wait_http_ok

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux SO_REUSEPORT semantics")


def listener(port: int = 0, share: bool = True) -> socket.socket:
    """Bound and listening like granian's workers (SO_REUSEADDR and, if `share`, SO_REUSEPORT)."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("share", [False, True], ids=["plain", "reuseport"])
def test_a_port_someone_listens_on_is_refused(share: bool) -> None:
    with listener(share=share) as other:
        port = other.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"):
            reserve("127.0.0.1", port)


def test_the_hold_refuses_a_second_mittr_but_not_our_own_server() -> None:
    port = free_port()
    held = reserve("127.0.0.1", port)
    try:
        assert held.guard is not None
        with pytest.raises(ListenError, match="address already in use"):
            reserve("127.0.0.1", port)              # a second `mittr serve` checks first
        with pytest.raises(OSError):
            listener(port, share=False).close()     # so does any server that does not share ports
        ours = listener(port)                        # granian, started by us, binds beside the hold
        with ours, socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = ours.accept()                  # and it, not the hold, gets the connections
            conn.close()
    finally:
        held.release()
    reserve("127.0.0.1", port).release()             # released: free again


def test_time_wait_leftovers_of_a_previous_run_are_fine() -> None:
    with listener() as server:
        port = server.getsockname()[1]
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", port))
            conn, _ = server.accept()
            conn.close()                             # the server closes first: TIME_WAIT on its port
            time.sleep(0.05)
            client.close()
    held = reserve("127.0.0.1", port)
    try:
        assert held.guard is None or held.guard.getsockname()[1] == port, "the port is held again"
        with pytest.raises(ListenError, match="in use"):
            reserve("127.0.0.1", port)                # ...and, held, refused to anyone else
    finally:
        held.release()


def test_errors_name_the_address() -> None:
    assert describe("::1", 8400) == "[::1]:8400"
    assert describe("127.0.0.1", 8400) == "127.0.0.1:8400"
    with pytest.raises(ListenError, match=r"cannot listen on 192\.0\.2\.1:\d+: cannot assign requested address"):
        probe("192.0.2.1", free_port())             # TEST-NET-1: not an address of this machine


def test_waiting_for_the_api_gives_up_at_once_when_asked_to_stop() -> None:
    start = time.monotonic()
    assert not wait_http_ok(f"http://127.0.0.1:{free_port()}/health", 60, stop=lambda: True)
    assert time.monotonic() - start < 30


def test_an_api_server_that_lost_the_port_race_is_reported_as_such() -> None:
    """Free at the check, taken before the server bound it (no hold): its early exit says why."""
    child = Child("api", [sys.executable, "-c", "raise SystemExit(1)"])
    child.start({})
    assert child.proc is not None and child.proc.wait(30) == 1
    with listener(share=False) as other:
        port = other.getsockname()[1]
        assert ApiStart(child, "127.0.0.1", port, Reservation(None)).failure() == \
            f"mittr: cannot listen on 127.0.0.1:{port}: address already in use"
    assert ApiStart(child, "127.0.0.1", free_port(), Reservation(None)).failure() == \
        "mittr: the API server exited while starting (exit code 1); see the log above"
