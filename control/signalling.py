"""NOTIFY channels the API sends on and the shards LISTEN to. Notifications are hints only:
a shard's periodic scan finds anything a lost notification would have announced."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import asyncpg

from control.store.queries import q

log = logging.getLogger("mittr.signalling")
MAX_PAYLOAD_BYTES = 7_900            # PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more

WORK_CHANNEL = "mittr_work"          # payload: comma-separated partitions with new due work
ENDPOINT_CHANNEL = "mittr_endpoint"  # payload: "<endpoint id>:<partition>" whose config changed
RELEASE_CHANNEL = "mittr_release"    # payload: "<partition>|<target key>|<task id>,..." to drop from memory


def work_payload(partitions: Iterable[int]) -> str:
    return ",".join(str(p) for p in sorted(set(partitions)))


def work_payloads(partitions: Iterable[int], max_bytes: int = MAX_PAYLOAD_BYTES) -> list[str]:
    """`work_payload` split into as few payloads as fit a NOTIFY each (4,096 partitions need three)."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for p in sorted(set(partitions)):
        text = str(p)
        if current and size + 1 + len(text) > max_bytes:
            out.append(",".join(current))
            current, size = [], 0
        size += len(text) + (1 if current else 0)
        current.append(text)
    if current:
        out.append(",".join(current))
    return out


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
        await conn.execute(q("notify_work"), payload)


async def notify_endpoint_changed(conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: uuid.UUID,
                                  partition: int) -> None:
    await conn.execute(q("notify_endpoint"), f"{endpoint_id}:{partition}")


class WorkSignal:
    """The ingest path's wake-ups for the shards, coalesced: partitions noted within `delay_s` of
    each other go out as one NOTIFY, sent after the events were committed. One NOTIFY per stored
    event cost about a fifth of single-event ingest (every commit that notifies takes PostgreSQL's
    notify-queue lock and signals every listener). NOTIFY is only a hint: if this process dies
    before sending, the shards' periodic scan finds the work."""

    def __init__(self, pool: asyncpg.Pool, delay_s: float = 0.002) -> None:
        self.pool = pool
        self.delay_s = delay_s
        self._pending: set[int] = set()
        self._sender: asyncio.Task[None] | None = None

    def wake(self, partitions: Iterable[int]) -> None:
        """Note partitions with new due work (committed already); returns at once."""
        self._pending.update(partitions)
        if self._pending and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_soon())

    async def flush(self) -> None:
        """Wait until what was noted has been sent (on shutdown, before the pool closes)."""
        sender = self._sender
        if sender is not None:
            await sender

    async def _send_soon(self) -> None:
        try:
            await asyncio.sleep(self.delay_s)
            while self._pending:          # what arrives while sending goes out in the next round
                pending, self._pending = self._pending, set()
                for payload in work_payloads(pending):
                    try:
                        await self.pool.execute(q("notify_work"), payload)
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                        log.debug("wake-up not sent; the shards' scan will find the work",
                                  extra={"error": str(exc)})
        finally:
            self._sender = None
