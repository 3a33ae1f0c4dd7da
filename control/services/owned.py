"""Reading a tenant's own rows: the lookup by id and the keyset page every resource family shares.

Queries used here take the caller's scope as `$1`/`$2` after the id: `(id, client, project)` for a
row, `(client, project, *filters, after, after id, limit)` for a page. Families that sub-accounts
own (endpoints, events) pass `sub_account=True` and take the caller's sub-account as one more
parameter at the end (NULL: the whole workspace)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from control.errors import NotFound
from control.jsonfmt import decode_cursor, page
from control.services.principal import Principal
from control.store.queries import q
from control.validate import uuid_or_404


async def owned_row(db: asyncpg.Pool | asyncpg.Connection, query: str, raw_id: str, who: Principal,
                    what: str, sub_account: bool = False) -> asyncpg.Record:
    """The caller's row with this id; a malformed id, an unknown one and another tenant's (or
    another project's) answer the same 404, so ids reveal nothing."""
    scope = (who.sub_account_id,) if sub_account else ()
    row = await db.fetchrow(q(query), uuid_or_404(raw_id, what), who.client_id, who.project_id, *scope)
    if row is None:
        raise NotFound(f"{what} not found")
    return row


async def owned_page(db: asyncpg.Pool | asyncpg.Connection, query: str, who: Principal, limit: int,
                     cursor: str | None, shape: Callable[[asyncpg.Record], dict[str, Any]],
                     filters: Sequence[object] = (), sub_account: bool = False,
                     tail: Sequence[object] = ()) -> dict[str, Any]:
    """One keyset page (`{data, pagination}`), newest first, of the caller's rows. `tail`: more
    parameters, after all the others."""
    after, after_id = decode_cursor(cursor)
    scope = (who.sub_account_id,) if sub_account else ()
    rows = await db.fetch(q(query), who.client_id, who.project_id, *filters, after, after_id, limit + 1, *scope,
                          *tail)
    return page([shape(r) for r in rows], list(rows), limit)
