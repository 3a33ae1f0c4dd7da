"""NATS JetStream (nats-py): one message per event, counted once the stream acknowledges it."""

from __future__ import annotations

import asyncio
from typing import Any

import nats

from control.policy.ssrf import AddressPolicy
from engine.destinations.base import Message, Sent, screen_url


class NatsDestination:
    def __init__(self, cfg: dict[str, Any], policy: AddressPolicy, timeout_ms: int) -> None:
        self.cfg, self.policy, self.timeout_s = cfg, policy, max(1.0, timeout_ms / 1000)
        self.nc: Any = None
        self.js: Any = None

    async def open(self) -> None:
        await screen_url(self.cfg["url"], self.policy, 4222)
        # nats-py keeps retrying a refused first connect, reporting each failure only to error_cb:
        # the first one reported ends this attempt (as `refused`) instead of its timeout.
        errors: list[Exception] = []
        failed = asyncio.Event()

        async def on_error(exc: Exception) -> None:
            errors.append(exc)
            failed.set()

        connecting = asyncio.ensure_future(nats.connect(
            self.cfg["url"], connect_timeout=self.timeout_s, allow_reconnect=False, max_reconnect_attempts=0,
            error_cb=on_error))
        waiting = asyncio.ensure_future(failed.wait())
        await asyncio.wait({connecting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            raise errors[0]
        self.nc = connecting.result()
        self.js = self.nc.jetstream(timeout=self.timeout_s)

    async def send(self, batch: list[Message]) -> list[Sent]:
        subject = self.cfg["subject"]
        results = await asyncio.gather(*(self.js.publish(subject, m.body, headers=dict(m.headers))
                                         for m in batch), return_exceptions=True)
        return [r if isinstance(r, BaseException) else f"{r.stream}:{r.seq}" for r in results]

    async def close(self) -> None:
        nc, self.nc = self.nc, None
        if nc is not None and not nc.is_closed:
            await nc.close()
