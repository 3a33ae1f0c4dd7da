"""bench.destinations run once with tiny counts, untimed, so the benchmark never rots: every kind
reachable here delivers every event, each with its attempt recorded, and the report has a ratio."""

from __future__ import annotations

import asyncio

import pytest

from bench.destinations import BROKERS, KINDS, build, listening, report, run


@pytest.mark.timeout(420)
def test_every_kind_delivers_everything_once() -> None:
    kinds = [k for k in KINDS if k not in BROKERS or listening(BROKERS[k])]
    args = build().parse_args(["--events", "30", "--kinds", ",".join(kinds), "--shards", "1", "--workers", "1",
                               "--endpoints", "1", "--timeout", "120"])
    tallies = asyncio.run(run(args))
    assert set(tallies) == set(kinds)
    for kind, t in tallies.items():
        assert t.delivered == 30 and t.attempts == 30 and t.seconds >= 0, (kind, t)
    table = report(tallies)
    assert "| http | 30 | 30 |" in table and table.count("\n") == len(kinds) + 1
