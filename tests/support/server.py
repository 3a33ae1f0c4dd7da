"""Runs `mittr serve` as a real subprocess and talks to it over HTTP, as a user would."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

KEY_LINE = re.compile(r"Admin API key.*?: (mtr_\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MittrServer:
    database_url: str
    shards: int = 2
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = 0
    admin_key: str = ""
    proc: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, role: str = "serve") -> list[str]:
        """`mittr serve` (or `mittr api`) on this server's address."""
        argv = [sys.executable, "-m", "control.cli", role, "--host", "127.0.0.1", "--port", str(self.port)]
        return argv + (["--shards", str(self.shards)] if role == "serve" else []) + ["--workers", "1"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url,
            "MITTR_ENGINE__ALLOW_PRIVATE_NETWORKS": "true",
            "MITTR_ENGINE__SCAN_INTERVAL_MS": "250",
            "MITTR_ENGINE__DRAIN_TIMEOUT_S": "5",
            "MITTR_LOG__LEVEL": "warning",
            # Mail a test server sends (no SMTP configured) lands in a throwaway outbox, not the home
            # directory of whoever runs the tests.
            "MITTR_MAIL__OUTBOX_DIR": os.path.join(tempfile.gettempdir(), "mittr-test-outbox"),
            **self.env_overrides,
        })
        return env

    async def start(self, timeout: float = 60) -> MittrServer:
        self.port = self.port or free_port()
        self.proc = await asyncio.create_subprocess_exec(
            *self.command(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.environment(), start_new_session=True)
        ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready))
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError as exc:
            await self.stop()
            raise RuntimeError("mittr serve did not start:\n" + "\n".join(self.output[-50:])) from exc
        return self

    async def _read(self, ready: asyncio.Future[None]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            m = KEY_LINE.search(line)
            if m:
                self.admin_key = m.group(1)
            if line.startswith("Mittr listening on") and not ready.done():
                ready.set_result(None)
        if not ready.done():
            ready.set_exception(RuntimeError("mittr serve exited:\n" + "\n".join(self.output[-50:])))

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """SIGTERM asks the supervisor to drain; SIGKILL takes down its whole process group."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            if sig == signal.SIGKILL:
                self.kill_group()
            else:
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.kill_group()
                await self.proc.wait()
        self.kill_group()   # nothing of ours may outlive the test (and hold the output pipe open)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return self.proc.returncode

    def kill_group(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def processes_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment has name=value: a run's whole tree, orphans included, when the
    test gave it a unique value (children inherit the environment)."""
    needle = f"{name}={value}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue   # gone, or not ours
    return found


class Api:
    """A thin client: every call returns (status, json body)."""

    def __init__(self, base: str, key: str, session: aiohttp.ClientSession) -> None:
        self.base, self.key, self.session = base, key, session

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   key: str | None = None) -> tuple[int, Any]:
        h = {"X-API-Key": key if key is not None else self.key, **(headers or {})}
        async with self.session.request(method, self.base + path, json=body, headers=h) as resp:
            text = await resp.text()
            data = None
            if text:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = text
            return resp.status, data

    async def wait_event(self, event_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status, body = await self.call("GET", f"/api/v1/events/{event_id}")
            assert status == 200, body
            if body["status"] in statuses:
                return body
            if loop.time() > deadline:
                raise AssertionError(f"event {event_id} stuck in {body['status']}: {body}")
            await asyncio.sleep(0.1)
