"""Starting on a port that is taken fails at once, says why and leaves nothing running; stopping a
server (SIGTERM, or Ctrl-C to the whole terminal group) leaves no process behind either, even while
a client holds a request open."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid

import pytest

from tests.support.server import MittrServer, free_port, processes_with_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180),
              pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; Linux SO_REUSEPORT semantics")]

MARK = "PYTEST_MITTR_RUN"   # inherited by every process of the run under test


def occupy(port: int, share: bool) -> socket.socket:
    """A listener that never answers. `share` sets SO_REUSEPORT, as granian (hence a running Mittr)
    does: a second server that also sets it would share the port silently instead of failing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


async def leftovers(mark: str, within: float = 5.0) -> list[int]:
    """The marked processes still running after `within` seconds (they may be finishing exiting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (alive := processes_with_env(MARK, mark)) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    return alive


async def exit_code(proc: asyncio.subprocess.Process, within: float) -> int | None:
    """The exit code, without waiting for the output pipe to close as `proc.wait()` does: an
    orphaned grandchild would hold that open forever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while proc.returncode is None and loop.time() < deadline:
        await asyncio.sleep(0.1)
    return proc.returncode


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("share", [False, True], ids=["plain-listener", "reuseport-listener"])
@pytest.mark.parametrize("role", ["serve", "api"])
async def test_port_in_use_fails_at_once(db_url: str, role: str, share: bool) -> None:
    mark = uuid.uuid4().hex
    srv = MittrServer(db_url, shards=1, port=free_port(), env_overrides={MARK: mark})
    with occupy(srv.port, share):
        proc = await asyncio.create_subprocess_exec(
            *srv.command(role), env=srv.environment(), start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            out, err = b"", b""
        finally:
            left = await leftovers(mark, within=2.0)
            kill(left)
        stderr = err.decode(errors="replace")
        assert proc.returncode not in (None, 0), f"still running or succeeded; stdout:\n{out.decode()}"
        assert f"cannot listen on 127.0.0.1:{srv.port}: address already in use" in stderr, stderr
        assert b"listening" not in out.lower()
        assert left == [], f"processes left behind: {left}"


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
async def test_stop_leaves_no_process_behind(db_url: str, how: str) -> None:
    """A client trickling a request body keeps a granian worker busy; the stop still ends everything
    within the drain timeout (the worker is killed by granian, not by the supervisor's last resort)."""
    mark = uuid.uuid4().hex
    srv = MittrServer(db_url, shards=2, env_overrides={MARK: mark})
    await srv.start()
    slow = socket.create_connection(("127.0.0.1", srv.port))
    try:
        tree = processes_with_env(MARK, mark)
        assert len(tree) >= 5, f"supervisor, granian and its worker, two shards: {tree}"
        slow.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: mittr\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\nX-API-Key: " + srv.admin_key.encode() + b"\r\n\r\n{")
        await asyncio.sleep(1)   # let the worker take the request; the body never completes
        assert srv.proc is not None
        if how == "sigterm":
            srv.proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(srv.proc.pid, signal.SIGINT)   # what the terminal does on Ctrl-C
        code = await exit_code(srv.proc, 90)
        left = await leftovers(mark)
        kill(left)
        log = "\n".join(srv.output)
        assert left == [], f"processes left behind: {left}\n{log}"
        assert "did not stop in time" not in log, log
        assert code == 0, log
    finally:
        slow.close()
        await srv.stop()

