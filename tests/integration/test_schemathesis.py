"""Schemathesis against /openapi.json of a real `mittr serve`: no 5xx, every response matches the
documented schema, and no operation rejects most of what its own schema says is valid (the document
is as strict as the API; tests/support/schemathesis_report.py lists the few exceptions and why).
The fuzzing budget is small (8 examples an operation); the coverage phase is exhaustive and takes
most of the time, in two processes at once."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import _create_db, _drop_db
from tests.support.pg import with_database
from tests.support.schemathesis_report import looser_than_documented
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


# The operations run as two schemathesis processes at once (on disjoint paths, each family of
# resources whole in one of them, so the ids one operation creates feed the others as before): the
# run is CPU-bound in generation, and two processes on two cores take about half the time without
# testing any less. One worker each: with two threads in one process hypothesis's shared source
# caches raced (a KeyError inside schemathesis's coverage phase, not a finding about the API).
HEAVY = r"^/(api/v1/(alerting|connectors|endpoints|scim|sso)|scim)(/|$)"
SHARDS = (("--include-path-regex", HEAVY), ("--exclude-path-regex", HEAVY))


async def start(server: MittrServer, cwd: Path, *selection: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json", *selection,
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                    "content_type_conformance",
        "--header", f"X-API-Key: {server.admin_key}",
        # A key may delete itself, and the fuzzer finds the admin key's id in GET /api/v1/api-keys: it
        # would then fuzz every later operation with a dead key (tests/integration/test_api_keys.py covers it).
        "--exclude-operation-id", "delete__api_v1_api_keys_id_",
        # Unique inputs: a repeated test case tests nothing new (operations with few inputs stop early).
        "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1", "--generation-unique-inputs",
        "--phases", "examples,coverage,fuzzing", "--no-shrink", "--request-timeout", "10",
        "--suppress-health-check", "all", "--max-failures", "20", "--output-truncate", "true",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"})


@pytest.mark.timeout(300)
async def test_no_server_errors_and_responses_match_the_schema(server: MittrServer, tmp_path: Path) -> None:
    procs: list[asyncio.subprocess.Process] = []
    try:
        for i, shard in enumerate(SHARDS):
            (tmp_path / str(i)).mkdir()
            procs.append(await start(server, tmp_path / str(i), *shard))
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=270)
    finally:
        for p in procs:          # a timeout (or any failure) leaves no schemathesis running
            if p.returncode is None:
                p.kill()
                await p.wait()
    runs = [(p.returncode, out.decode(errors="replace")) for p, (out, _) in zip(procs, outs, strict=True)]
    texts = [text for _, text in runs]
    if os.environ.get("MITTR_SCHEMATHESIS_LOG"):
        Path(os.environ["MITTR_SCHEMATHESIS_LOG"]).write_text("\n\n".join(texts))
    for rc, text in runs:
        report = "\n".join(line[:400] for line in text.splitlines())     # reproduction lines can be huge
        assert rc == 0, report[-12000:] + "\n\nserver log:\n" + "\n".join(server.output[-30:])
    if (MAX_EXAMPLES, SEED) == ("8", "4242"):   # which operations get flagged depends on the draw
        looser, stale = looser_than_documented(*texts)
        tails = "\n".join(text[-3000:] for text in texts)
        assert not looser, f"the OpenAPI document is looser than the API for {sorted(looser)}:\n{tails}"
        assert not stale, f"no longer flagged, remove from KNOWN_LOOSE: {sorted(stale)}"
