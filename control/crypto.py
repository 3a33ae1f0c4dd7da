"""Secrets at rest: signing secrets and mTLS private keys are stored AES-GCM encrypted.

The key comes from `security.encryption_key` (url-safe base64 of 32 bytes). Left empty, `mittr
serve` generates one on first start into a key file beside the data (see `resolve_key`) and hands
it to its children, so the database alone never holds what decrypts it.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
KEY_ENV = "MITTR_SECURITY__ENCRYPTION_KEY"


class CryptoError(ValueError):
    """The key is malformed, or a stored value was not encrypted with it."""


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def parse_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError) as exc:
        raise CryptoError("security.encryption_key: not url-safe base64") from exc
    if len(raw) != 32:
        raise CryptoError("security.encryption_key: must decode to 32 bytes")
    return raw


def default_key_file() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/mittr/encryption.key")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mittr" / "encryption.key"


def resolve_key(configured: str, key_file: Path | None = None) -> str:
    """The configured key, else the one in the key file (made, mode 0600, on first use)."""
    if configured:
        parse_key(configured)
        return configured
    path = key_file or default_key_file()
    if path.exists():
        text = path.read_text().strip()
        parse_key(text)
        return text
    path.parent.mkdir(parents=True, exist_ok=True)
    text = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return text


class SecretBox:
    def __init__(self, key: str) -> None:
        self._aead = AESGCM(parse_key(key))

    def seal(self, plaintext: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored   # written before encryption was configured
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX):])
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except Exception as exc:
            raise CryptoError("stored secret cannot be decrypted with the configured key") from exc

    def seal_optional(self, plaintext: str | None) -> str | None:
        return None if plaintext is None else self.seal(plaintext)

    def open_optional(self, stored: str | None) -> str | None:
        return None if stored is None else self.open(stored)


_BOXES: dict[str, SecretBox] = {}


def box_for(configured_key: str) -> SecretBox:
    """One SecretBox per key per process (resolving the key file at most once)."""
    key = resolve_key(configured_key)
    box = _BOXES.get(key)
    if box is None:
        box = _BOXES[key] = SecretBox(key)
    return box
