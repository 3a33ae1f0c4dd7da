"""Starts the API server and N shard processes, restarts any that die, and stops them in order.

Children are real processes (`python -m engine.shard`, granian for the API) so that a crash, a
kill -9 or a leak in one of them never takes the others down.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from control.metrics import MULTIPROC_ENV, forget_process
from engine.listen import ListenError, Reservation, probe
from engine.membership import EXIT_REASSIGNED

log = logging.getLogger("mittr.supervisor")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 0.5
    next_start: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.argv, env=env)  # noqa: S603
        self.started_at = time.monotonic()
        log.info("process started", extra={"child": self.name, "child_pid": self.proc.pid})

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Supervisor:
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def add(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv)
        self.children.append(child)
        return child

    def start_all(self) -> None:
        for child in self.children:
            child.start(self.env)

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def watch_once(self) -> None:
        """Restart dead children, with backoff when one keeps dying young."""
        now = time.monotonic()
        for child in self.children:
            if child.alive or self.stopping:
                continue
            if child.next_start == 0.0:
                code = child.proc.returncode if child.proc else None
                self._forget_metrics(child)
                if code == EXIT_REASSIGNED:   # a shard handed its range over: take the new one now
                    log.info("shard moves to its new range", extra={"child": child.name})
                    child.start(self.env)
                    continue
                lived = now - child.started_at
                child.backoff = 0.5 if lived > 30 else min(child.backoff * 2, 10.0)
                child.next_start = now + (0.0 if lived > 30 else child.backoff)
                log.warning("process exited; restarting",
                            extra={"child": child.name, "code": code, "in_s": round(child.next_start - now, 2)})
            if now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                child.start(self.env)

    def _forget_metrics(self, child: Child) -> None:
        """A dead child's live Prometheus gauges must not be summed any more."""
        path = self.env.get(MULTIPROC_ENV)
        if path and child.proc is not None:
            forget_process(child.proc.pid, path)

    def stop_all(self, timeout: float) -> None:
        """SIGTERM every child, wait up to `timeout` in all, then SIGKILL what is left together
        with its own children (granian's workers), which would otherwise outlive it holding the port."""
        for child in reversed(self.children):
            if child.alive and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("process did not stop in time; killing", extra={"child": child.name})
                kill_tree(child.proc.pid)
                child.proc.wait()


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Children, grandchildren... of `pid`, read from /proc (empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for entry in proc.glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue   # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and everything under it; the tree is read first, while the links still hold."""
    for target in [*descendants(pid), pid]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class ApiStart:
    """The API child and the address it must come up on."""

    child: Child
    host: str
    port: int
    listen: Reservation

    @property
    def health_url(self) -> str:
        # a wildcard address is reached on loopback
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/health"

    def failure(self) -> str:
        """Why the API did not come up, in one line for the user."""
        proc = self.child.proc
        if proc is None or proc.poll() is None:
            return "mittr: the API did not become healthy; see the log above"
        self.listen.release()   # free our own hold, then see whether someone else has the port
        try:
            probe(self.host, self.port)
        except ListenError as exc:
            return f"mittr: {exc}"
        return f"mittr: the API server exited while starting (exit code {proc.returncode}); see the log above"


def shard_argv(index: int, count: int, owner: str, member: str | None = None) -> list[str]:
    """With `member`, shard `index` of the member's `count` (range from the live members); without,
    shard `index` of `count` across the database (a fixed range, the `--first/--total` override)."""
    argv = [sys.executable, "-m", "engine.shard", "--index", str(index), "--count", str(count), "--owner", owner]
    return argv + (["--member", member] if member else [])


def api_argv(host: str, port: int, workers: int, stop_timeout: float) -> list[str]:
    """granian waits for open connections forever on SIGTERM unless told otherwise, so a worker
    holding a slow client would outlive the drain: it is killed after `stop_timeout` seconds."""
    kill_after = min(1800, max(1, math.ceil(stop_timeout)))
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", host, "--port", str(port),
            "--workers", str(workers), "--loop", "uvloop", "--ws", "--log-level", "warning",
            "--no-access-log", "--respawn-failed-workers", "--workers-kill-timeout", str(kill_after),
            "api.asgi:app"]


def wait_http_ok(url: str, timeout: float, child: Child | None = None,
                 stop: Callable[[], bool] = lambda: False) -> bool:
    """True once `url` answers 200; False when `child` exits first, when `stop()` turns true
    (Ctrl-C while starting) or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop():
        if child is not None and not child.alive:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own loopback URL
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def child_env(database_url: str, config_file: str | None, metrics_dir: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    if config_file:
        env["MITTR_CONFIG"] = os.path.abspath(config_file)
    if metrics_dir:
        env[MULTIPROC_ENV] = metrics_dir   # every child writes its Prometheus files there
    return env
