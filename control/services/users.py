"""People: accounts (e-mail, password) and their memberships in workspaces.

Shared by sign-up, invitations, `mittr users create`, SSO and SCIM, so a person is made one way.
E-mail addresses are stored lower-case and compared that way.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import asyncpg

from control.errors import Conflict, ValidationError
from control.policy.access import ROLES, Role
from control.policy.passwords import check_strength, hash_password
from control.store.queries import q

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def parse_email(value: object, field: str = "email") -> str:
    if not isinstance(value, str) or len(value) > 254 or not EMAIL_RE.match(value.strip()):
        raise ValidationError(f"{field}: a valid e-mail address is required")
    return value.strip().lower()


def parse_role(value: object, field: str = "role") -> Role:
    if value not in ROLES:
        raise ValidationError(f"{field}: must be one of {', '.join(ROLES)}")
    return value


async def hashed_password(password: object, email: str, field: str = "password") -> str:
    """Check the rule, then hash off the event loop (argon2id takes tens of milliseconds)."""
    return await asyncio.to_thread(hash_password, check_strength(password, email, field))


async def create_user(conn: asyncpg.Connection, email: str, *, name: str = "", password_hash: str | None = None,
                      verified: bool = False) -> asyncpg.Record:
    """A new person; 409 CONFLICT when the e-mail address is taken."""
    try:
        return await conn.fetchrow(q("insert_user"), uuid.uuid4(), email, name, password_hash, verified)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("an account with this e-mail address already exists") from exc


async def user_by_email(conn: asyncpg.Connection | asyncpg.Pool, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(q("user_by_email"), email.strip().lower())


async def add_member(conn: asyncpg.Connection, client_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> None:
    await conn.execute(q("upsert_membership"), client_id, user_id, role)


def user_json(row: Any, id_column: str = "id") -> dict[str, Any]:
    """A person as the API shows them; `id_column` names the user's id in a joined row."""
    return {"id": str(row[id_column]), "email": row["email"], "name": row["name"],
            "emailVerified": row["email_verified_at"] is not None}
