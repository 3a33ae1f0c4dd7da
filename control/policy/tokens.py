"""Random bearer tokens (API keys, sessions, e-mailed links): only their SHA-256 is ever stored.

SHA-256 without a salt is right here, unlike for passwords: a token carries 256 random bits, so no
dictionary or brute force can reach it, and a lookup by digest must be one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()
