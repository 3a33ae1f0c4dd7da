"""NOTIFY channels the API sends on and the shards LISTEN to. Notifications are hints only:
a shard's periodic scan finds anything a lost notification would have announced."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

WORK_CHANNEL = "mittr_work"          # payload: comma-separated partitions with new due work
ENDPOINT_CHANNEL = "mittr_endpoint"  # payload: "<endpoint id>:<partition>" whose config changed
RELEASE_CHANNEL = "mittr_release"    # payload: "<partition>|<target key>|<task id>,..." to drop from memory


def work_payload(partitions: Iterable[int]) -> str:
    return ",".join(str(p) for p in sorted(set(partitions)))


def parse_work_payload(payload: str) -> list[int]:
    out = []
    for part in payload.split(","):
        part = part.strip()
        if part.isdigit():
            out.append(int(part))
    return out


def release_payload(partition: int, target_key: str, task_ids: Iterable[uuid.UUID]) -> str:
    """Tasks whose held copies for `target_key` (in `partition`) must not be sent: their event now
    goes somewhere else. The key names the copy, so a shard that already holds the new one keeps it."""
    return f"{partition}|{target_key}|{','.join(str(i) for i in task_ids)}"


def parse_release_payload(payload: str) -> tuple[int, str, list[uuid.UUID]] | None:
    part, sep, rest = payload.partition("|")
    key, sep2, ids = rest.rpartition("|")
    if not (sep and sep2 and part.isdigit() and key):
        return None
    try:
        return int(part), key, [uuid.UUID(i) for i in ids.split(",") if i]
    except ValueError:
        return None


async def notify_work(conn: asyncpg.Connection | asyncpg.Pool, partitions: Iterable[int]) -> None:
    payload = work_payload(partitions)
    if payload:
        await conn.execute("SELECT pg_notify($1, $2)", WORK_CHANNEL, payload)


async def notify_endpoint_changed(conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: uuid.UUID,
                                  partition: int) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", ENDPOINT_CHANNEL, f"{endpoint_id}:{partition}")
