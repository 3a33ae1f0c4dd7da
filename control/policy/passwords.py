"""Passwords: argon2id hashes, and the rule a new password must meet.

The rule (documented in the README): 8 to 128 characters, not the e-mail address or its name part,
not one character repeated, and not one of the most common passwords. Length beats composition
rules (NIST SP 800-63B), so there is no "one digit, one symbol" requirement.
Hashing costs about 20 ms and 19 MiB (OWASP's argon2id settings): callers run it off the event loop.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from control.errors import ValidationError

MIN_LENGTH, MAX_LENGTH = 8, 128
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
COMMON = frozenset("""   # compared lower-cased; the OpenAPI document lists them too
password password1 password12 password123 12345678 123456789 1234567890 qwertyui qwerty123
qwertyuiop iloveyou abc12345 11111111 00000000 letmein1 welcome1 admin123 passw0rd sunshine
princess football baseball dragon123 monkey123 trustno1 superman 87654321 asdfghjk zaq12wsx
""".split())
# A hash to verify against when the account does not exist, so a wrong e-mail costs the same time.
_DUMMY = _HASHER.hash("mittr-no-such-account")


def check_strength(password: object, email: str = "", field: str = "password") -> str:
    if not isinstance(password, str):
        raise ValidationError(f"{field}: required, a string")
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationError(f"{field}: must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    lowered = password.lower()
    local = email.lower().split("@", 1)[0]
    if lowered == email.lower() or (len(local) >= 4 and lowered == local):
        raise ValidationError(f"{field}: must not be your e-mail address")
    if len(set(password)) == 1 or lowered in COMMON:
        raise ValidationError(f"{field}: too easy to guess; choose a longer or less common password")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not there is a stored hash (no account enumeration by timing)."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
