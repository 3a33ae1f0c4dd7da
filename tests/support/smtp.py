"""A real SMTP server in the test process (aiosmtpd), keeping every message it receives."""

from __future__ import annotations

import asyncio
import email
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.server import free_port


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.to(address)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"no mail for {address} within {timeout} s: {[m['To'] for m in self.messages]}")
            await asyncio.sleep(0.05)
        return self.to(address)


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else str(message.get_payload())


def token_in(message: Message) -> str:
    """The token of the first `token=` link in a mail."""
    found = re.search(r"token=([A-Za-z0-9_\-]+)", body_of(message))
    assert found, body_of(message)
    return found.group(1)


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def env(self) -> dict[str, str]:
        """Settings that point a Mittr server at this SMTP server."""
        return {"MITTR_MAIL__SMTP_HOST": "127.0.0.1", "MITTR_MAIL__SMTP_PORT": str(self.port),
                "MITTR_MAIL__SMTP_SECURITY": "none"}
