"""The kind for `storage` and `broker` endpoints: object stores and message brokers, in batches.

Each endpoint has one channel: attempts queue there and go out in batches (a storage batch is one
object; broker messages are published together and confirmed one by one), and every attempt gets
its own SendResult back through its callback, so claims, retries, breaker, rate limits, attempts
and analytics are the engine's as for HTTP. Each store or broker lives in its own module, named in
DRIVERS; adding one touches neither the shard nor the dispatcher.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.destinations.base import Destination, Done, Message, Sent, classify, delivered
from engine.model import EndpointConfig, Task
from engine.request import Request
from engine.sender import SendResult

log = logging.getLogger("mittr.engine.destinations")
# type -> (module, class); brokers get batch window 0: what is queued goes out at once.
DRIVERS = {
    "filesystem": ("engine.destinations.files", "FileDestination"),
    "s3": ("engine.destinations.s3", "S3Destination"),
    "rabbitmq": ("engine.destinations.rabbitmq", "RabbitDestination"),
    "nats": ("engine.destinations.nats", "NatsDestination"),
    "redis": ("engine.destinations.redis_streams", "RedisDestination"),
}
BROKER_BATCH = 256


def make(cfg: EndpointConfig, storage_root: str) -> Destination:
    assert cfg.destination is not None
    kind = cfg.destination["type"]
    module, name = DRIVERS[kind]
    cls: Any = getattr(importlib.import_module(module), name)
    if kind == "filesystem":
        return cls(cfg.destination, storage_root)    # type: ignore[no-any-return]
    return cls(cfg.destination, cfg.policy, cfg.timeout_ms)    # type: ignore[no-any-return]


class Channel:
    """One endpoint's queue of attempts and the loop that sends them in batches."""

    def __init__(self, cfg: EndpointConfig, storage_root: str) -> None:
        assert cfg.destination is not None
        self.revision = (cfg.revision, cfg.version)
        storage = cfg.delivery_mode == "storage"
        self.window_s = int(cfg.destination.get("batchWindowMs", 0)) / 1000 if storage else 0.0
        self.max_records = int(cfg.destination.get("batchMaxRecords", 500)) if storage else BROKER_BATCH
        self.timeout_s = max(0.1, cfg.timeout_ms / 1000)
        self.cfg, self.storage_root = cfg, storage_root
        self.dest: Destination | None = None
        self.queue: list[tuple[Message, Done]] = []
        self.ready = asyncio.Event()
        self.full = asyncio.Event()
        self.retiring = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    def put(self, message: Message, on_done: Done) -> None:
        self.queue.append((message, on_done))
        self.ready.set()
        if len(self.queue) >= self.max_records:
            self.full.set()

    def retire(self) -> None:
        """Send what is queued, then close (the endpoint's settings changed)."""
        self.retiring = True
        self.ready.set()

    async def _run(self) -> None:
        try:
            while True:
                if not self.queue:
                    if self.retiring:
                        return
                    self.ready.clear()
                    await self.ready.wait()
                    continue
                if self.window_s > 0 and len(self.queue) < self.max_records and not self.retiring:
                    self.full.clear()
                    try:
                        await asyncio.wait_for(self.full.wait(), self.window_s)
                    except TimeoutError:
                        pass
                batch, self.queue = self.queue[:self.max_records], self.queue[self.max_records:]
                await self._send(batch)
        finally:
            await self._close()

    async def _send(self, batch: list[tuple[Message, Done]]) -> None:
        sent_ns = time.perf_counter_ns()
        results: list[Sent]
        try:
            if self.dest is None:
                self.dest = make(self.cfg, self.storage_root)
                await asyncio.wait_for(self.dest.open(), self.timeout_s)
            results = await asyncio.wait_for(self.dest.send([m for m, _ in batch]), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            results = [exc] * len(batch)
        done_ns = time.perf_counter_ns()
        if any(isinstance(r, BaseException) for r in results):
            await self._close()          # opened afresh for the next batch
        for (_, on_done), r in zip(batch, results, strict=True):
            result = classify(r, sent_ns, done_ns) if isinstance(r, BaseException) else delivered(r, sent_ns, done_ns)
            try:
                on_done(result)
            except Exception:
                log.exception("recording a destination outcome failed")

    async def _close(self) -> None:
        dest, self.dest = self.dest, None
        if dest is not None:
            try:
                await asyncio.wait_for(dest.close(), 5)
            except Exception as exc:
                log.info("closing a destination failed", extra={"error": type(exc).__name__})


class Destinations:
    def __init__(self, storage_root: str) -> None:
        self.storage_root = storage_root
        self.channels: dict[uuid.UUID, Channel] = {}
        self.retired: set[Channel] = set()

    def start(self, cfg: EndpointConfig | None, task: Task, request: Request, attempted_at: datetime,
              on_done: Done) -> None:
        if cfg is None or cfg.destination is None:     # a storage or broker endpoint without its config
            now = time.perf_counter_ns()
            mode = cfg.delivery_mode if cfg is not None else "push"
            on_done(SendResult(None, "", f"deliveryMode {mode} has no destination configured",
                               "other", "failure", True, None, now, now))
            return
        channel = self.channels.get(cfg.id)
        if channel is None or channel.revision != (cfg.revision, cfg.version):
            if channel is not None:
                channel.retire()
                self.retired.add(channel)
                channel.task.add_done_callback(self._forget_retired(channel))
            channel = self.channels[cfg.id] = Channel(cfg, self.storage_root)
        channel.put(Message(task.event_id, task.event_type, request.headers, request.body, attempted_at), on_done)

    def _forget_retired(self, channel: Channel) -> Callable[[asyncio.Task[None]], None]:
        return lambda _task: self.retired.discard(channel)

    async def close(self) -> None:
        channels = [*self.channels.values(), *self.retired]
        for channel in channels:
            channel.retire()
        if channels:
            await asyncio.wait([c.task for c in channels], timeout=10)
        for channel in channels:
            channel.task.cancel()
