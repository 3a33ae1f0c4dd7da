"""The shard's copy of its endpoints' settings, kept true to Postgres.

Changes arrive by NOTIFY, which is only a hint: a notification lost while the listener reconnected,
or a refresh that failed on a database hiccup, would leave a paused, resumed, deleted or edited
endpoint wrong for as long as the shard lives. So a refresh that fails is remembered and retried,
and every few seconds the cache compares its revisions (`endpoints.updated_at`) with Postgres in
one query and reloads what differs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from control.crypto import SecretBox
from control.policy.destinations import opened
from control.store.queries import q
from engine.model import EndpointConfig

log = logging.getLogger("mittr.engine.endpoints")
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class EndpointCache:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox, engine_settings: Mapping[str, Any]) -> None:
        self.pool = pool
        self.box = box
        self.engine_settings = engine_settings     # the SSRF policy's settings, as the API reads them
        self.configs: dict[uuid.UUID, EndpointConfig] = {}
        self.stale: set[uuid.UUID] = set()       # refreshes that failed: retried by reconcile()

    def get(self, endpoint_id: uuid.UUID) -> EndpointConfig | None:
        return self.configs.get(endpoint_id)

    def _config(self, row: Any) -> EndpointConfig:
        cfg = EndpointConfig.from_row(row, self.engine_settings)
        cfg.signing_secret = self.box.open(cfg.signing_secret)
        cfg.mtls_key = self.box.open_optional(cfg.mtls_key)
        cfg.sw_ed25519_private = self.box.open_optional(cfg.sw_ed25519_private)
        stored = row["storage_config"] if cfg.delivery_mode == "storage" else \
            row["broker_config"] if cfg.delivery_mode == "broker" else None
        cfg.destination = opened(stored, self.box.open) if stored else None
        return cfg

    async def load(self, ids: Iterable[uuid.UUID]) -> list[EndpointConfig]:
        """Read these endpoints' settings now (raises on a database error). An endpoint whose row
        is gone altogether stays unknown; the claim treats its work as deleted."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = await self.pool.fetch(q("endpoint_configs"), wanted)
        loaded = []
        for row in rows:
            cfg = self._config(row)
            self.configs[cfg.id] = cfg
            loaded.append(cfg)
        self.stale.difference_update(wanted)
        return loaded

    async def refresh(self, ids: Iterable[uuid.UUID]) -> list[EndpointConfig]:
        """Like load, but a failure is remembered for the next reconcile instead of raised; the
        cached config stays in force meanwhile (better slightly old than none)."""
        wanted = list(ids)
        try:
            return await self.load(wanted)
        except DB_ERRORS as exc:
            self.stale.update(wanted)
            log.warning("endpoint refresh failed; will retry", extra={"error": str(exc), "count": len(wanted)})
            return []

    async def reconcile(self) -> list[EndpointConfig]:
        """Reload every cached endpoint whose revision moved, plus the refreshes that failed."""
        if not self.configs and not self.stale:
            return []
        known = list(self.configs)
        rows = await self.pool.fetch(q("endpoint_revisions"), known)
        current = {r["id"]: r["updated_at"] for r in rows}
        changed = {i for i in known if current.get(i) != self.configs[i].revision} | self.stale
        gone = [i for i in changed if i in self.configs and i not in current]
        for i in gone:                      # the row was removed: nothing more can be sent to it
            self.configs[i].deleted = True
        reloaded = await self.load(i for i in changed if i not in gone)
        return reloaded + [self.configs[i] for i in gone]
