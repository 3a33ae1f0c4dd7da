"""Schemathesis against /openapi.json of a real `mittr serve`: no 5xx, and every response matches
the documented schema. The example budget is small so that the run stays well under a minute."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import _create_db, _drop_db
from tests.support.pg import with_database
from tests.support.schemathesis_report import KNOWN_LOOSE, mismatched_operations
from tests.support.server import MittrServer

MAX_EXAMPLES = os.environ.get("MITTR_SCHEMATHESIS_EXAMPLES", "8")
SEED = os.environ.get("MITTR_SCHEMATHESIS_SEED", "4242")


@pytest.fixture
async def server(pg_admin_url: str, template_db: str) -> AsyncIterator[MittrServer]:
    name = await _create_db(pg_admin_url, template_db)
    # Fuzzed destinations must not send the engine anywhere: private networks stay refused.
    srv = MittrServer(with_database(pg_admin_url, name), shards=1,
                      env_overrides={"MITTR_ENGINE__ALLOW_PRIVATE_NETWORKS": "false"})
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
        await _drop_db(pg_admin_url, name)


@pytest.mark.timeout(180)
async def test_no_server_errors_and_responses_match_the_schema(server: MittrServer, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                    "content_type_conformance",
        "--header", f"X-API-Key: {server.admin_key}",
        # A key may delete itself, and the fuzzer finds the admin key's id in GET /api/v1/api-keys: it
        # would then fuzz every later operation with a dead key (tests/integration/test_api_keys.py covers it).
        "--exclude-operation-id", "delete__api_v1_api_keys_id_",
        # One worker: with two threads hypothesis's shared source caches raced (a KeyError inside
        # schemathesis's coverage phase, not a finding about the API).
        "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--no-shrink", "--request-timeout", "10",
        "--suppress-health-check", "all", "--max-failures", "20", "--output-truncate", "true",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"})
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=150)
    text = out.decode(errors="replace")
    if os.environ.get("MITTR_SCHEMATHESIS_LOG"):
        Path(os.environ["MITTR_SCHEMATHESIS_LOG"]).write_text(text)
    report = "\n".join(line[:400] for line in text.splitlines())     # reproduction lines can be huge
    assert proc.returncode == 0, report[-12000:] + "\n\nserver log:\n" + "\n".join(server.output[-30:])
    if (MAX_EXAMPLES, SEED) == ("8", "4242"):   # which operations get flagged depends on the draw
        looser = mismatched_operations(text) - KNOWN_LOOSE
        assert not looser, f"the OpenAPI document is looser than the API for {sorted(looser)}:\n{report[-6000:]}"
