"""Per-endpoint credentials beyond the signing secret: mTLS client certificates and the ed25519
key for Standard Webhooks `v1a` signatures. Private halves are sealed at rest, never returned."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control.crypto import box_for
from control.errors import NotFound
from control.services.endpoints import EndpointService, endpoint_json
from control.services.mtls import check_pair
from control.services.principal import Principal
from control.settings import Settings
from control.signalling import notify_endpoint_changed
from control.store.queries import q
from control.validate import need_object, str_field


class EndpointSecurityService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.endpoints = EndpointService(pool, partitions, settings)
        self.box = box_for(settings.security["encryption_key"] if settings else "")

    async def _changed(self, row: asyncpg.Record | None) -> dict[str, Any]:
        if row is None:
            raise NotFound("endpoint not found")
        await notify_endpoint_changed(self.pool, row["id"], row["partition"])
        return endpoint_json(row)

    async def set_mtls(self, who: Principal, endpoint_id: str, body: Any) -> dict[str, Any]:
        data = need_object(body)
        cert = str_field(data.get("certPem"), "certPem", 65536, allow_empty=False)
        key = str_field(data.get("keyPem"), "keyPem", 65536, allow_empty=False)
        check_pair(cert, key, field="certPem")
        current = await self.endpoints._get_row(who, endpoint_id)
        row = await self.pool.fetchrow(q("set_endpoint_mtls"), current["id"], who.client_id, cert, self.box.seal(key))
        return await self._changed(row)

    async def clear_mtls(self, who: Principal, endpoint_id: str) -> None:
        current = await self.endpoints._get_row(who, endpoint_id)
        await self._changed(await self.pool.fetchrow(q("set_endpoint_mtls"), current["id"], who.client_id, None, None))

    async def rotate_ed25519(self, who: Principal, endpoint_id: str) -> dict[str, Any]:
        current = await self.endpoints._get_row(who, endpoint_id)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        public_text = "whpk_" + base64.b64encode(public).decode()
        row = await self.pool.fetchrow(q("set_endpoint_ed25519"), current["id"], who.client_id,
                                       self.box.seal(base64.b64encode(private).decode()), public_text)
        return await self._changed(row)
