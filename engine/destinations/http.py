"""HTTP push, the default kind: engine/sender.py's protocol-level client behind the Kind interface.

`start` is synchronous up to the socket write (a pooled keep-alive connection gets the request in
the same loop turn) and the outcome comes from the connection's callback, so going through the
interface adds one method call to the hot path and nothing else.
"""

from __future__ import annotations

from datetime import datetime

from engine.destinations.base import Done
from engine.model import EndpointConfig, Task
from engine.request import Request
from engine.sender import Senders


class HttpKind:
    def __init__(self, senders: Senders) -> None:
        self.senders = senders

    def start(self, cfg: EndpointConfig | None, task: Task, request: Request, attempted_at: datetime,
              on_done: Done) -> None:
        ssl_ctx = self.senders.client_tls(cfg) if cfg is not None and cfg.mtls_cert else None
        self.senders.for_policy(request.policy).start(
            request.url, request.body, request.headers, request.timeout_ms, request.policy, ssl_ctx, on_done)

    async def close(self) -> None:
        await self.senders.close()
