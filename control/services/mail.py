"""Outbound e-mail: SMTP when configured, else an outbox directory and the log.

Every mail Mittr sends (e-mail verification, password reset, team invitations, alerts) goes through
`Mailer.send`. With `mail.smtp_host` empty a mail is written as an .eml file to the outbox and
logged (recipient and subject only: links carry tokens), so the two-command quick start works with
no mail server; a self-hoster reads the link from the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib

from control.settings import Settings

log = logging.getLogger("mittr.mail")
SEND_TIMEOUT_S = 20.0


def default_outbox() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/mittr/outbox")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mittr" / "outbox"


class MailError(RuntimeError):
    """The mail could not be handed to the SMTP server."""


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.cfg: dict[str, Any] = settings.section("mail")
        self.outbox = Path(self.cfg["outbox_dir"]) if self.cfg["outbox_dir"] else default_outbox()

    def message(self, to: str, subject: str, text: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.cfg["from_address"]
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="mittr.local")
        msg.set_content(text)
        return msg

    async def send(self, to: str, subject: str, text: str) -> None:
        msg = self.message(to, subject, text)
        if not self.cfg["smtp_host"]:
            path = await asyncio.to_thread(self._write_outbox, msg)
            log.info("mail written to the outbox (no SMTP server configured)",
                     extra={"to": to, "subject": subject, "file": str(path)})
            return
        security = self.cfg["smtp_security"]
        try:
            await aiosmtplib.send(
                msg, hostname=self.cfg["smtp_host"], port=int(self.cfg["smtp_port"]),
                username=self.cfg["smtp_username"] or None, password=self.cfg["smtp_password"] or None,
                use_tls=security == "tls", start_tls=True if security == "starttls" else False,
                timeout=SEND_TIMEOUT_S)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning("mail not sent", extra={"to": to, "subject": subject, "error": type(exc).__name__})
            raise MailError(f"could not send mail: {type(exc).__name__}") from exc
        log.info("mail sent", extra={"to": to, "subject": subject})

    def _write_outbox(self, msg: EmailMessage) -> Path:
        self.outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(msg))
        return path
