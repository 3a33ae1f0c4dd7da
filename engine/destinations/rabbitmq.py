"""RabbitMQ (aio-pika): one persistent message per event, counted once the broker confirms it."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika

from control.policy.ssrf import AddressPolicy
from engine.destinations.base import Message, Sent, screen_url


class RabbitDestination:
    def __init__(self, cfg: dict[str, Any], policy: AddressPolicy, timeout_ms: int) -> None:
        self.cfg, self.policy, self.timeout_s = cfg, policy, max(1.0, timeout_ms / 1000)
        self.conn: Any = None
        self.exchange: Any = None

    async def open(self) -> None:
        await screen_url(self.cfg["url"], self.policy, 5672)
        self.conn = await aio_pika.connect(self.cfg["url"], timeout=self.timeout_s)
        channel = await self.conn.channel(publisher_confirms=True, on_return_raises=True)
        name = self.cfg.get("exchange") or ""
        self.exchange = channel.default_exchange if not name else await channel.get_exchange(name, ensure=True)

    async def send(self, batch: list[Message]) -> list[Sent]:
        key = self.cfg["routingKey"]
        where = f"{self.cfg.get('exchange') or '(default)'}/{key}"
        results = await asyncio.gather(*(self.exchange.publish(
            aio_pika.Message(m.body, headers=dict(m.headers), message_id=str(m.event_id), type=m.event_type or "",
                             content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=key, mandatory=True) for m in batch), return_exceptions=True)
        return [r if isinstance(r, BaseException) else f"{where} message_id={m.event_id}"
                for m, r in zip(batch, results, strict=True)]

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
