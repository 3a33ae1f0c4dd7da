"""deploy/ stays true to the CLI and the package: no Docker engine runs here, so what can be checked
without one is checked — the compose file parses and its commands are real `mittr` commands with
real flags, the image copies every package the wheel is built from, the stop grace periods outlast
the drain, and systemd accepts the unit (`systemd-analyze verify`, where systemd is installed)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from control.cli import build_parser, cmd_api, cmd_engine, cmd_serve

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DRAIN_S = tomllib.loads((ROOT / "config" / "default.toml").read_text())["engine"]["drain_timeout_s"]


def parsed(argv: list[str]) -> object:
    """The handler the real CLI picks for `mittr <argv>` (argparse exits on an unknown flag)."""
    assert argv[0] == "mittr", argv
    return build_parser().parse_args(argv[1:]).func


def compose() -> dict[str, object]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_runs_postgres_the_api_and_the_engine_with_real_commands() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert set(services) == {"postgres", "api", "engine"}
    assert parsed(services["api"]["command"]) is cmd_api
    assert parsed(services["engine"]["command"]) is cmd_engine
    api_args = build_parser().parse_args(services["api"]["command"][1:])
    assert api_args.host == "0.0.0.0"   # in a container the API must be reachable
    for role in ("api", "engine"):
        service = services[role]
        env = service["environment"]
        assert env["DATABASE_URL"].endswith("@postgres:5432/mittr")
        # Both roles share one encryption key, and compose refuses to start without it.
        assert re.fullmatch(r"\$\{MITTR_ENCRYPTION_KEY:\?.+\}", env["MITTR_SECURITY__ENCRYPTION_KEY"])
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert int(service["stop_grace_period"].rstrip("s")) >= DRAIN_S + 10
    user = services["postgres"]["environment"]["POSTGRES_USER"]
    assert f"//{user}:" in services["api"]["environment"]["DATABASE_URL"]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_is_python_311_slim_copies_every_package_and_runs_mittr_serve() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    [cmd] = [args for op, args in steps if op == "CMD"]
    assert parsed(yaml.safe_load(cmd)) is cmd_serve
    copied = {args.split()[0] for op, args in steps if op == "COPY"}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
    # control/config is a link to config/: without config/ the wheel would carry a dangling link.
    assert (ROOT / "control" / "config").resolve() == ROOT / "config" and "config" in copied
    assert {"pyproject.toml", "README.md"} <= {p for op, args in steps if op == "COPY" for p in args.split()[:-1]}
    assert any(op == "RUN" and "pip install /src" in args for op, args in steps)
    assert any(op == "USER" and args != "root" for op, args in steps)
    assert any(op == "ENV" and "MITTR_SERVER__HOST=0.0.0.0" in args for op, args in steps)


def unit() -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in
            (DEPLOY / "mittr.service").read_text().splitlines()) if v and not k.startswith("#")}


def test_the_systemd_unit_runs_mittr_serve_and_outlasts_the_drain() -> None:
    service = unit()
    assert parsed([Path(shlex.split(service["ExecStart"])[0]).name, *shlex.split(service["ExecStart"])[1:]]) \
        is cmd_serve
    assert int(service["TimeoutStopSec"]) >= DRAIN_S + 10
    assert service["KillSignal"] == "SIGTERM"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on this machine")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """Verified as written, but with ExecStart at this checkout's installed `mittr` (the unit's
    /opt/mittr venv does not exist here)."""
    mittr = Path(sys.executable).parent / "mittr"
    assert mittr.exists()
    text = (DEPLOY / "mittr.service").read_text().replace("/opt/mittr/bin/mittr", str(mittr))
    (tmp_path / "mittr.service").write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "mittr.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
