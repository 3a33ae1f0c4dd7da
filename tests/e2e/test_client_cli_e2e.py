"""`mittr events|endpoints|deliveries ...` as subprocesses against a real `mittr serve` and a real
sink: server and key from the environment, flags or the config file; human and --json output;
API errors as one line and exit 1; `deliveries tail` follows new attempts and stops on SIGINT."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from mittr_client import AsyncClient
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e


async def mittr(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli", *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MITTR_URL", "MITTR_API_KEY")}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path), **extra}


async def test_everyday_commands_against_a_real_server(server: MittrServer, api: Api, sink: Sink,
                                                       tmp_path: Path) -> None:
    (tmp_path / "mittr").mkdir()
    (tmp_path / "mittr" / "config.toml").write_text(f'url = "{server.url}"\napi_key = "{server.admin_key}"\n')
    env = environ(tmp_path)                                            # everything from the config file

    code, out, err = await mittr("endpoints", "create", "--url", f"{sink.url}/cli", "--events", "cli.*",
                                 "--description", "from the cli", "--json", env=env)
    assert code == 0, err
    ep = json.loads(out)
    assert ep["eventTypes"] == ["cli.*"] and ep["signingSecret"] and ep["description"] == "from the cli"

    code, out, err = await mittr("events", "send", "--type", "cli.done", "--data", '{"a": 1}', "--json", env=env)
    assert code == 0, err
    event_id = json.loads(out)["id"]
    await api.wait_event(event_id, {"delivered"}, timeout=60)
    [got] = await sink.wait_for("/cli", 1)
    assert json.loads(got.body) == {"a": 1}

    code, out, err = await mittr("events", "get", event_id, env=env)             # human
    assert code == 0, err
    assert event_id in out and "delivered" in out and 'payload: {"a": 1}' in out and "success" in out

    (tmp_path / "payload.json").write_text('{"b": 2}')
    code, out, err = await mittr("events", "send", "--type", "cli.more", "--data", f"@{tmp_path / 'payload.json'}",
                                 env=env)
    assert code == 0 and "cli.more" in out and "queued" in out, (out, err)
    code, out, err = await mittr("events", "list", "--limit", "1", "--json", env=env)
    assert code == 0 and len(json.loads(out)) == 1, err
    code, out, _ = await mittr("events", "list", "--limit", "3", env=env)
    assert code == 0 and event_id in out and len(out.splitlines()) == 2            # two events so far

    code, out, err = await mittr("endpoints", "pause", ep["id"], env=env)
    assert code == 0 and ep["id"] in out and "paused" in out, err
    code, out, _ = await mittr("endpoints", "list", "--json", env=env)
    assert [e["status"] for e in json.loads(out) if e["id"] == ep["id"]] == ["paused"]
    code, out, _ = await mittr("endpoints", "resume", ep["id"], env=env)
    assert code == 0 and "active" in out

    code, out, err = await mittr("deliveries", "tail", "--no-follow", "--json", env=env)
    assert code == 0, err
    attempts = [json.loads(line) for line in out.splitlines()]
    assert any(a["eventId"] == event_id and a["outcome"] == "success" for a in attempts)

    code, out, err = await mittr("events", "replay", event_id, env=env)          # delivered: not replayable
    assert code == 1 and out == "" and err.startswith("mittr: 409 INVALID_STATE")
    code, _, err = await mittr("events", "get", "00000000-0000-0000-0000-000000000000", env=env)
    assert code == 1 and "404 NOT_FOUND" in err
    code, _, err = await mittr("events", "list", "--api-key", "mtr_wrong", env=env)  # the flag wins
    assert code == 1 and "401" in err
    code, _, err = await mittr("events", "list", env=environ(tmp_path, MITTR_API_KEY="mtr_wrong"))  # env too
    assert code == 1 and "401" in err
    code, out, _ = await mittr("endpoints", "list", "--server", server.url, "--api-key", server.admin_key,
                               env=environ(tmp_path / "none"))
    assert code == 0 and ep["id"] in out


async def test_replay_of_a_failed_event(server: MittrServer, api: Api, sink: Sink, tmp_path: Path) -> None:
    sink.script("/down", lambda n: 500 if n == 1 else 200)
    async with AsyncClient(server.url, server.admin_key) as c:
        failed = await c.events.create({"x": 1}, destination=f"{sink.url}/down", max_attempts=1)
    await api.wait_event(failed.id, {"failed", "dead"}, timeout=60)
    env = environ(tmp_path, MITTR_URL=server.url, MITTR_API_KEY=server.admin_key)
    code, out, err = await mittr("events", "replay", failed.id, env=env)
    assert code == 0 and f"replayed {failed.id}" in out, err
    await api.wait_event(failed.id, {"delivered"}, timeout=60)


async def test_deliveries_tail_follows_new_attempts_until_sigint(server: MittrServer, api: Api, sink: Sink,
                                                                 tmp_path: Path) -> None:
    env = environ(tmp_path, MITTR_URL=server.url, MITTR_API_KEY=server.admin_key)
    async with AsyncClient(server.url, server.admin_key) as c:
        ep = await c.endpoints.create(f"{sink.url}/tail", event_types=["tail.*"])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control.cli", "deliveries", "tail", "--endpoint", ep.id, "--interval", "0.3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        assert proc.stdout is not None
        try:
            await asyncio.sleep(2)                      # started (and found nothing yet for this endpoint)
            made = [await c.events.create({"i": i}, event_type="tail.tick") for i in range(3)]
            lines: list[str] = []
            while len(lines) < 3:
                lines.append((await asyncio.wait_for(proc.stdout.readline(), 60)).decode())
            assert sorted(next(e.id for e in made if e.id in line) for line in lines) == sorted(e.id for e in made)
            assert all("success" in line and ep.id in line for line in lines)
        finally:
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
