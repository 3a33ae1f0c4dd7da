"""Per-endpoint credentials beyond the signing secret: mTLS client certificates and the ed25519
key for Standard Webhooks `v1a` signatures. Private halves are sealed at rest, never returned."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control.crypto import box_for
from control.services.endpoints import EndpointService, endpoint_json
from control.services.mtls import check_pair
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, str_field


class EndpointSecurityService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.endpoints = EndpointService(pool, partitions, settings)
        self.box = box_for(settings.security["encryption_key"] if settings else "")

    async def _set(self, who: Principal, endpoint_id: str, action: str, query: str, *values: object) -> dict[str, Any]:
        """One credential change with its audit row (which shows `hasMtls` and the public key, never
        a private half), through EndpointService.change."""
        async def apply(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
            return await conn.fetchrow(q(query), current["id"], who.client_id, *values)

        return endpoint_json(await self.endpoints.change(who, endpoint_id, action, apply))

    async def set_mtls(self, who: Principal, endpoint_id: str, body: Any) -> dict[str, Any]:
        data = need_object(body)
        cert = str_field(data.get("certPem"), "certPem", 65536, allow_empty=False)
        key = str_field(data.get("keyPem"), "keyPem", 65536, allow_empty=False)
        check_pair(cert, key, field="certPem")
        return await self._set(who, endpoint_id, "set_mtls", "set_endpoint_mtls", cert, self.box.seal(key))

    async def clear_mtls(self, who: Principal, endpoint_id: str) -> None:
        await self._set(who, endpoint_id, "remove_mtls", "set_endpoint_mtls", None, None)

    async def rotate_ed25519(self, who: Principal, endpoint_id: str) -> dict[str, Any]:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        public_text = "whpk_" + base64.b64encode(public).decode()
        return await self._set(who, endpoint_id, "rotate_ed25519", "set_endpoint_ed25519",
                               self.box.seal(base64.b64encode(private).decode()), public_text)
