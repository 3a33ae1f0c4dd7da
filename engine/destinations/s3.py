"""`s3` storage: NDJSON batches PUT to any S3-compatible store (aiobotocore)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from control.policy.destinations import object_key
from control.policy.ssrf import AddressPolicy
from control.services.events import time_ordered_ids
from engine.destinations.base import Message, Rejected, Sent, ndjson, screen_url


class S3Destination:
    def __init__(self, cfg: dict[str, Any], policy: AddressPolicy, timeout_ms: int) -> None:
        self.cfg, self.policy = cfg, policy
        self.timeout_s = max(1.0, timeout_ms / 1000)
        self.prefix, self.gzip = str(cfg.get("prefix") or ""), bool(cfg.get("gzip"))
        self._ctx: Any = None
        self.client: Any = None

    async def open(self) -> None:
        endpoint = self.cfg.get("endpointUrl")
        url = endpoint or f"https://s3.{self.cfg['region']}.amazonaws.com"
        await screen_url(url, self.policy, 443 if url.startswith("https") else 80)
        config = AioConfig(connect_timeout=self.timeout_s, read_timeout=self.timeout_s,
                           retries={"max_attempts": 1}, s3={"addressing_style": "path"} if endpoint else None)
        self._ctx = get_session().create_client(
            "s3", region_name=self.cfg["region"], endpoint_url=endpoint, config=config,
            aws_access_key_id=self.cfg["accessKeyId"], aws_secret_access_key=self.cfg["secretAccessKey"])
        self.client = await self._ctx.__aenter__()

    async def send(self, batch: list[Message]) -> list[Sent]:
        now = datetime.now(UTC)
        key = object_key(self.prefix, now.year, now.month, now.day, now.hour, str(time_ordered_ids(1)[0]),
                         self.gzip)
        try:
            await self.client.put_object(
                Bucket=self.cfg["bucket"], Key=key, Body=ndjson(batch, self.gzip),
                ContentType="application/gzip" if self.gzip else "application/x-ndjson")
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise Rejected(f"S3 refused the object: {exc.response.get('Error', {}).get('Code')}",
                           status if isinstance(status, int) else None) from exc
        return [key] * len(batch)

    async def close(self) -> None:
        ctx, self._ctx, self.client = self._ctx, None, None
        if ctx is not None:
            await ctx.__aexit__(None, None, None)
