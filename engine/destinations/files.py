"""`filesystem` storage: NDJSON batches under the server's storage root, fsynced before they count."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from control.policy.destinations import object_key
from control.services.events import time_ordered_ids
from engine.destinations.base import Message, Sent, ndjson


class FileDestination:
    def __init__(self, cfg: dict[str, Any], root: str) -> None:
        if not root:
            raise PermissionError("filesystem destinations are turned off (engine.storage_root is not set)")
        self.root = os.path.realpath(root)
        self.base = os.path.realpath(os.path.join(self.root, cfg["directory"]))
        if os.path.commonpath([self.root, self.base]) != self.root:
            raise PermissionError("storageConfig.directory leaves the storage root")
        self.prefix, self.gzip = str(cfg.get("prefix") or ""), bool(cfg.get("gzip"))

    async def open(self) -> None:
        return None

    async def send(self, batch: list[Message]) -> list[Sent]:
        now = datetime.now(UTC)
        key = object_key(self.prefix, now.year, now.month, now.day, now.hour, str(time_ordered_ids(1)[0]),
                         self.gzip)
        data = ndjson(batch, self.gzip)
        await asyncio.to_thread(self._write, key, data)
        return [key] * len(batch)

    def _write(self, key: str, data: bytes) -> None:
        path = os.path.join(self.base, key)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        if os.path.commonpath([self.root, os.path.realpath(folder)]) != self.root:
            raise PermissionError("storage path leaves the storage root")
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)            # the rename itself is durable too
        finally:
            os.close(fd)

    async def close(self) -> None:
        return None
