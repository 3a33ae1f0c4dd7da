"""Stopping kills what refuses to stop together with its own children: a server's worker must
not outlive it (holding the port and the output pipe) when the supervisor has to use SIGKILL."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from engine.supervisor import Supervisor, descendants

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

# A parent and a child that both ignore SIGTERM, like a server whose worker is stuck on a client.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c",
                  "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
time.sleep(600)
"""


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"    # a zombie is dead, only not yet reaped


def test_stop_all_kills_the_children_of_a_child_that_ignores_sigterm() -> None:
    sup = Supervisor(dict(os.environ))
    child = sup.add("stubborn", [sys.executable, "-c", STUBBORN])
    sup.start_all()
    assert child.proc is not None
    deadline = time.monotonic() + 30
    while not (tree := descendants(child.proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tree, "the grandchild did not start"
    try:
        sup.stop_all(1)
        assert child.proc.returncode is not None
        time.sleep(0.2)
        assert [pid for pid in tree if running(pid)] == []
    finally:
        for pid in tree:
            if running(pid):
                os.kill(pid, 9)


def test_descendants_reads_the_tree_from_proc(tmp_path: Path) -> None:
    for pid, ppid, comm in [(10, 1, "sup"), (11, 10, "gran ian) x"), (12, 11, "worker"), (13, 10, "shard"),
                            (14, 1, "other"), (15, 14, "(x)")]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} 0 0\n")
    assert sorted(descendants(10, tmp_path)) == [11, 12, 13]
    assert descendants(12, tmp_path) == []
