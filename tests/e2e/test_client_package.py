"""`pip install ./clients/python` gives the client and receiver helpers alone: a clean venv, httpx
its only dependency, none of the server's packages."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_the_client_installs_and_imports_without_the_server(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT / "clients" / "python")], check=True,
                   timeout=300, capture_output=True)
    script = (
        "import sys, hmac, hashlib, time, mittr_client\n"
        "from mittr_client import Client, AsyncClient, verify\n"
        "body = b'{\"a\": 1}'\n"
        "sig = 'v1=' + hmac.new(b's', body, hashlib.sha256).hexdigest()\n"
        "assert verify('s', body, {'X-Mittr-Signature': sig, 'X-Mittr-Timestamp': str(int(time.time()))}) == {'a': 1}\n"
        "Client('http://127.0.0.1:9', 'k').close()\n"
        "heavy = [m for m in ('blacksheep', 'asyncpg', 'control', 'engine', 'uvloop') if m in sys.modules]\n"
        "print(mittr_client.__file__, heavy)\n"
    )
    out = subprocess.run([python, "-c", script], check=True, timeout=60, capture_output=True, text=True,
                         cwd=tmp_path).stdout
    assert str(env_dir) in out and out.strip().endswith("[]")
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], check=True, timeout=60,
                            capture_output=True, text=True).stdout.lower()
    assert "httpx" in listed and "blacksheep" not in listed and "asyncpg" not in listed
    assert sys.version_info >= (3, 11)
