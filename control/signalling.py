"""NOTIFY channels the API sends on and the shards LISTEN to. Notifications are hints only:
a shard's periodic scan finds anything a lost notification would have announced."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

WORK_CHANNEL = "mittr_work"          # payload: comma-separated partitions with new due work
ENDPOINT_CHANNEL = "mittr_endpoint"  # payload: "<endpoint id>:<partition>" whose config changed


def work_payload(partitions: Iterable[int]) -> str:
    return ",".join(str(p) for p in sorted(set(partitions)))


def parse_work_payload(payload: str) -> list[int]:
    out = []
    for part in payload.split(","):
        part = part.strip()
        if part.isdigit():
            out.append(int(part))
    return out


async def notify_work(conn: asyncpg.Connection | asyncpg.Pool, partitions: Iterable[int]) -> None:
    payload = work_payload(partitions)
    if payload:
        await conn.execute("SELECT pg_notify($1, $2)", WORK_CHANNEL, payload)


async def notify_endpoint_changed(conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: uuid.UUID,
                                  partition: int) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", ENDPOINT_CHANNEL, f"{endpoint_id}:{partition}")
