"""Redis Streams (redis-py asyncio): XADD with an approximate MAXLEN; the entry id is the proof."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as redis

from control.policy.ssrf import AddressPolicy
from engine.destinations.base import Message, Sent, screen_url


class RedisDestination:
    def __init__(self, cfg: dict[str, Any], policy: AddressPolicy, timeout_ms: int) -> None:
        self.cfg, self.policy, self.timeout_s = cfg, policy, max(1.0, timeout_ms / 1000)
        self.client: Any = None

    async def open(self) -> None:
        await screen_url(self.cfg["url"], self.policy, 6379)
        self.client = redis.from_url(self.cfg["url"], socket_connect_timeout=self.timeout_s,
                                     socket_timeout=self.timeout_s, retry_on_timeout=False)
        await self.client.ping()

    async def send(self, batch: list[Message]) -> list[Sent]:
        pipe = self.client.pipeline(transaction=False)
        for m in batch:
            pipe.xadd(self.cfg["stream"], {
                "event_id": str(m.event_id), "event_type": m.event_type or "",
                "headers": orjson.dumps(m.headers), "payload": m.body,
            }, maxlen=int(self.cfg["maxLen"]), approximate=True)
        results = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, BaseException) else (r.decode() if isinstance(r, bytes) else str(r))
                for r in results]

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()
