"""Where attempts go: one Kind per delivery mode, chosen per endpoint.

The shard builds the request, asks `Kinds.of(endpoint)` for the kind and starts the attempt on it;
claims, retries, breaker, rate limits, attempts and analytics are the engine's, whatever the kind.
HTTP push is engine/destinations/http.py; stores and brokers share the batching kind in
engine/destinations/batched.py, one module per store or broker. A new kind is a module and an
entry in Kinds.by_mode (or in batched.DRIVERS): neither the shard nor the dispatcher changes.
"""

from __future__ import annotations

from engine.destinations.base import Kind
from engine.destinations.batched import Destinations
from engine.destinations.http import HttpKind
from engine.model import EndpointConfig
from engine.sender import Senders


class Kinds:
    def __init__(self, senders: Senders, storage_root: str) -> None:
        self.http = HttpKind(senders)
        batched = Destinations(storage_root)
        self.by_mode: dict[str, Kind] = {"push": self.http, "storage": batched, "broker": batched}

    def of(self, cfg: EndpointConfig | None) -> Kind:
        """The kind an endpoint's attempts go through (a direct destination is always HTTP)."""
        if cfg is None:
            return self.http
        kind = self.by_mode.get(cfg.delivery_mode)
        if kind is None:
            raise ValueError(f"no destination kind delivers deliveryMode {cfg.delivery_mode!r}")
        return kind

    async def close(self) -> None:
        for kind in dict.fromkeys(self.by_mode.values()):
            await kind.close()
