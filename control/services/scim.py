"""SCIM v2 provisioning: a workspace's bearer tokens (made and revoked by its admins), and the Users
an identity provider creates, reads, changes, deactivates and removes with one of them.

A SCIM User is a membership of the token's workspace; its id is the person's account id, so another
workspace's id answers 404 like an unknown one. What the IdP says about the person (userName,
externalId, name parts, displayName, e-mails, roles) is kept on the membership: one account can
belong to several workspaces, and one workspace's IdP must not rename or re-address it for the
others. The account's login address is fixed when the account is made (see docs/scim.md).

`active: false` deactivates the membership: the member can no longer sign in to this workspace, and
their sessions in it are revoked in the same transaction (session lookups are cached for about a
second, so every worker refuses them within that). Every change writes an audit row (resource
`team_member`, actor: the SCIM token) in its own transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError as PydanticValidationError
from scim2_models import (
    Context,
    Error,
    InvalidFilterException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    PatchOp,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    SearchRequest,
    UniquenessException,
)
from scim2_models.path.expressions import Comparison

from control.errors import ApiError, BadRequest, NotFound, Unauthorized
from control.jsonfmt import decode_cursor, iso, page
from control.policy.access import ROLES, Role
from control.policy.tokens import digest, new_token
from control.services import audit
from control.services.principal import Principal
from control.services.scim_schema import (
    KEPT_ATTRIBUTES,
    MAX_FILTER_CHARS,
    MAX_RESULTS,
    POLICY,
    USER_SCHEMA,
    User,
    UserRole,
    dump,
    user_meta,
)
from control.services.users import create_user, parse_email, user_by_email
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, str_field, uuid_or_404

TOKEN_PREFIX = "mtscim_"  # noqa: S105 - a label, not a secret
SHOWN_PREFIX = len(TOKEN_PREFIX) + 6
MAX_TOKEN_NAME = 200
MAX_TOKEN_CHARS = 200
TOUCH_EVERY_S = 60.0


# --- tokens (the admin API) -------------------------------------------------------------------

def token_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "prefix": row["token_prefix"],
            "createdBy": str(row["created_by"]) if row["created_by"] else None,
            "createdAt": iso(row["created_at"]), "lastUsedAt": iso(row["last_used_at"]),
            "revokedAt": iso(row["revoked_at"]), "active": row["revoked_at"] is None}


def parse_token_body(body: Any) -> str:
    data = need_object(body)
    unknown = sorted(set(data) - {"name"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if data.get("name") is None:
        raise BadRequest("name: required")
    return str_field(data["name"], "name", max_len=MAX_TOKEN_NAME, allow_empty=False).strip()


class ScimTokenService:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool

    async def create(self, who: Principal, body: Any, base_url: str) -> dict[str, Any]:
        """A new token, shown once; only its SHA-256 and prefix are kept."""
        name = parse_token_body(body)
        raw = new_token(TOKEN_PREFIX)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("scim_insert_token"), uuid.uuid4(), who.client_id, name, digest(raw),
                                      raw[:SHOWN_PREFIX], who.user_id)
            await audit.record(conn, who, "create", "scim_token", row["id"], after=token_json(row))
        return {**token_json(row), "token": raw, "scimBaseUrl": base_url}

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        after, after_id = decode_cursor(cursor)
        rows = await self.pool.fetch(q("scim_list_tokens"), who.client_id, after, after_id, limit + 1)
        return page([token_json(r) for r in rows], list(rows), limit)

    async def revoke(self, who: Principal, raw_id: str) -> None:
        """Revoked at once: the next SCIM request with it answers 401. Revoking twice is a no-op."""
        token_id = uuid_or_404(raw_id, "SCIM token")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("scim_revoke_token"), token_id, who.client_id)
            if row is None:
                raise NotFound(f"SCIM token {raw_id} not found")
            if not row["revoked_before"]:
                await audit.record(conn, who, "revoke", "scim_token", token_id, after=token_json(row))


class ScimAuthenticator:
    """`Authorization: Bearer <token>` → the workspace's SCIM Principal. No cache: a revoked token
    is refused on its next request (IdP traffic is light; the lookup is one indexed equality)."""

    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool
        self._touched: dict[uuid.UUID, float] = {}

    async def authenticate(self, raw: str | None, ip: str | None) -> Principal:
        if not raw or len(raw) > MAX_TOKEN_CHARS or not raw.startswith(TOKEN_PREFIX):
            raise Unauthorized("missing or invalid SCIM token")
        row = await self.pool.fetchrow(q("scim_token_by_hash"), digest(raw))
        if row is None:
            raise Unauthorized("missing or invalid SCIM token")
        now = time.monotonic()
        if now - self._touched.get(row["id"], -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
            if len(self._touched) > 10000:
                self._touched.clear()
            self._touched[row["id"]] = now
            await self.pool.execute(q("scim_touch_token"), row["id"])
        return Principal(row["client_id"], None, frozenset(), None, label=f"scim:{row['token_prefix']}", ip=ip)


# --- users ------------------------------------------------------------------------------------

def scim_role(roles: list[Any] | None) -> Role | None:
    """The role the IdP's `roles` name: the primary value, else the first with a value; matched
    case-insensitively; None when it sends none. Anything but admin/editor/viewer is refused."""
    given = [r for r in roles or [] if r.value is not None]
    if not given:
        return None
    chosen = next((r for r in given if r.primary), given[0])
    value = str(getattr(chosen.value, "value", chosen.value)).strip().lower()
    if value not in ROLES:
        raise InvalidValueException(detail=f"roles: {value!r} is not one of {', '.join(ROLES)}")
    return value


def _kept(resource: User) -> dict[str, Any]:
    full = dump(resource, Context.DEFAULT)
    return {k: full[k] for k in KEPT_ATTRIBUTES if full.get(k) not in (None, [], {})}


def login_address(resource: User) -> str:
    """The address a new account gets: the primary e-mail, else the first, else userName when it
    is an e-mail address."""
    emails = [e for e in resource.emails or [] if e.value]
    chosen = next((e for e in emails if e.primary), emails[0] if emails else None)
    candidate = str(chosen.value) if chosen is not None else resource.user_name
    try:
        return parse_email(candidate, "emails")
    except ApiError as exc:
        raise InvalidValueException(detail="emails: an e-mail address is needed to make the account") from exc


def to_resource(row: Mapping[str, Any], base: str) -> User:
    """A membership as the IdP sees it."""
    kept = dict(row["scim_attributes"] or {})
    if row["scim_attributes"] is None:          # a member the IdP never wrote: what Mittr knows
        kept = {"emails": [{"value": row["email"], "primary": True}],
                **({"displayName": row["name"]} if row["name"] else {})}
    resource = User.model_validate({"schemas": [USER_SCHEMA], **kept})
    if resource.roles and scim_role(resource.roles) != row["role"]:
        # Changed in Mittr (the team API) since the IdP sent it: show the role that applies.
        resource.roles = [UserRole(value=row["role"], primary=True)]
    resource.id = str(row["id"])
    resource.external_id = row["scim_external_id"]
    resource.user_name = row["scim_user_name"] or row["email"]
    resource.active = row["deactivated_at"] is None
    location = f"{base}/Users/{row['id']}"
    resource.meta = user_meta(location, row["created_at"], row["updated_at"])
    return resource


def _summary(row: Mapping[str, Any] | None, resource: User | None = None) -> dict[str, Any] | None:
    """What the audit row says about a member (before or after)."""
    if row is None:
        return None
    if resource is None:
        return {"email": row["email"], "role": row["role"], "active": row["deactivated_at"] is None,
                "userName": row["scim_user_name"] or row["email"], "externalId": row["scim_external_id"]}
    return {"email": row["email"], "role": scim_role(resource.roles) or row["role"], "active": resource.active,
            "userName": resource.user_name, "externalId": resource.external_id}


def validation_error(exc: PydanticValidationError) -> SCIMException:
    """A pydantic refusal as the SCIM error scim2-models maps it to (the first one)."""
    error: Error = Error.from_validation_errors(exc)[0]
    return SCIMException.from_error(error)


def parse_filter(text: str | None) -> ScimFilter[User] | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidFilterException(detail=f"filter: longer than {MAX_FILTER_CHARS} characters")
    try:
        return ScimFilter[User](text)
    except SCIMException:
        raise
    except (ValueError, PydanticValidationError) as exc:
        raise InvalidFilterException(detail=f"filter: {exc}") from exc


def user_name_equals(flt: ScimFilter[User] | None) -> str | None:
    """`userName eq "x"`, the IdPs' lookup, is answered by one indexed query; others scan."""
    node = flt.ast if flt is not None else None
    if isinstance(node, Comparison) and node.op.value == "eq" and isinstance(node.value, str) \
            and str(node.attr_path).lower() == "username":
        return node.value
    return None


@dataclass(frozen=True, slots=True)
class Query:
    """A list or search: filter, 1-based startIndex, count (≤ MAX_RESULTS), attributes."""
    filter: str | None = None
    start_index: int = 1
    count: int = MAX_RESULTS
    attributes: list[str] | None = None
    excluded_attributes: list[str] | None = None


def clamp_paging(start_index: int | None, count: int | None) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: a startIndex below 1 is 1, a negative count is 0; count is capped."""
    start = 1 if start_index is None or start_index < 1 else start_index
    size = MAX_RESULTS if count is None else max(0, min(count, MAX_RESULTS))
    return start, size


def search_query(body: Any) -> Query:
    """A POST .search body (SearchRequest) as a Query."""
    try:
        request: SearchRequest[Any] = SearchRequest.model_validate(need_object(body), scim_ctx=Context.SEARCH_REQUEST,
                                                                   scim_policy=POLICY)
    except PydanticValidationError as exc:
        raise validation_error(exc) from exc
    except BadRequest as exc:
        raise InvalidValueException(detail=str(exc)) from exc
    start, size = clamp_paging(request.start_index, request.count)
    return Query(str(request.filter) if request.filter is not None else None, start, size,
                 [str(a) for a in request.attributes or []] or None,
                 [str(a) for a in request.excluded_attributes or []] or None)


def response_parameters(attributes: list[str] | None, excluded: list[str] | None) -> ResponseParameters[Any] | None:
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters[User].model_validate(
            {"attributes": attributes, "excludedAttributes": excluded})
    except PydanticValidationError as exc:
        raise validation_error(exc) from exc


class ScimUserService:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool
        role = (settings.section("scim").get("default_role", "viewer") if settings is not None else "viewer")
        if role not in ROLES:
            raise ValueError(f"scim.default_role: must be one of {', '.join(ROLES)}")
        self.default_role: Role = role

    async def search(self, who: Principal, query: Query, base: str) -> dict[str, Any]:
        flt = parse_filter(query.filter)
        params = response_parameters(query.attributes, query.excluded_attributes)
        rows = await self.pool.fetch(q("scim_members"), who.client_id, user_name_equals(flt))
        found = [to_resource(r, base) for r in rows]
        if flt is not None:
            found = [r for r in found if flt.match(r)]
        chosen = found[query.start_index - 1:query.start_index - 1 + query.count]
        listed = ListResponse[User](total_results=len(found), start_index=query.start_index,
                                    items_per_page=len(chosen), resources=chosen)
        return dump(listed, Context.SEARCH_RESPONSE, response_parameters=params)

    async def get(self, who: Principal, raw_id: str, base: str, attributes: list[str] | None = None,
                  excluded: list[str] | None = None) -> dict[str, Any]:
        row = await self._row(self.pool, who, raw_id)
        return dump(to_resource(row, base), response_parameters=response_parameters(attributes, excluded))

    async def create(self, who: Principal, body: Any, base: str) -> dict[str, Any]:
        """A new member of the token's workspace (an existing account joins; a new one is made with no
        password: the person signs in with SSO, or sets one through 'forgot password')."""
        resource = self._validate(body, Context.RESOURCE_CREATION_REQUEST, active=True)
        address = login_address(resource)
        role = scim_role(resource.roles) or self.default_role
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("scim_lock_workspace"), who.client_id)
            user = await user_by_email(conn, address)
            if user is None:
                user = await create_user(conn, address, name=_display_name(resource))
            if await conn.fetchval(q("scim_user_name_taken"), who.client_id, resource.user_name, user["id"]):
                raise UniquenessException(detail=f"userName {resource.user_name!r} is already used in this workspace")
            added = await conn.fetchval(q("scim_insert_membership"), who.client_id, user["id"], role,
                                        resource.user_name, resource.external_id, _kept(resource),
                                        resource.active is not False)
            if added is None:
                raise UniquenessException(detail=f"{address} is already a member of this workspace")
            row = await conn.fetchrow(q("scim_member"), who.client_id, user["id"])
            await audit.record(conn, who, "create", "team_member", user["id"], after={**(_summary(row) or {}),
                                                                                      "via": "scim"})
        return dump(to_resource(row, base))

    async def replace(self, who: Principal, raw_id: str, body: Any, base: str) -> dict[str, Any]:
        """PUT: every attribute the IdP keeps is replaced by the body's (absent ones are cleared);
        an absent `active` keeps the membership as it is (never reactivates by omission), and absent
        `roles` keep the member's role."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("scim_lock_workspace"), who.client_id)
            row = await self._row(conn, who, raw_id)
            resource = self._validate(body, Context.RESOURCE_REPLACEMENT_REQUEST,
                                      active=row["deactivated_at"] is None)
            return await self._save(conn, who, row, resource, base)

    async def patch(self, who: Principal, raw_id: str, body: Any, base: str) -> dict[str, Any]:
        """RFC 7644 §3.5.2 operations (add, replace, remove), applied by scim2-models to the member's
        current representation, then saved like a PUT."""
        try:
            operations = PatchOp[User].model_validate(need_object(body), scim_ctx=Context.RESOURCE_PATCH_REQUEST,
                                                      scim_policy=POLICY)
        except PydanticValidationError as exc:
            raise validation_error(exc) from exc
        except BadRequest as exc:
            raise InvalidValueException(detail=str(exc)) from exc
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("scim_lock_workspace"), who.client_id)
            row = await self._row(conn, who, raw_id)
            resource = to_resource(row, base)
            try:
                operations.patch(resource, scim_policy=POLICY)
            except PydanticValidationError as exc:
                raise validation_error(exc) from exc
            return await self._save(conn, who, row, resource, base)

    async def delete(self, who: Principal, raw_id: str) -> None:
        """The membership goes (the account stays: it may belong to other workspaces), with its
        sessions in this workspace."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("scim_lock_workspace"), who.client_id)
            row = await self._row(conn, who, raw_id)
            await conn.execute(q("delete_membership"), who.client_id, row["id"])
            await conn.execute(q("revoke_user_sessions"), row["id"], who.client_id)
            await audit.record(conn, who, "delete", "team_member", row["id"], before=_summary(row))

    async def _save(self, conn: asyncpg.Connection, who: Principal, row: Mapping[str, Any], resource: User,
                    base: str) -> dict[str, Any]:
        if resource.user_name is None or not resource.user_name.strip():
            raise InvalidValueException(detail="userName: required")
        if await conn.fetchval(q("scim_user_name_taken"), who.client_id, resource.user_name, row["id"]):
            raise UniquenessException(detail=f"userName {resource.user_name!r} is already used in this workspace")
        role = scim_role(resource.roles) or row["role"]
        active = resource.active is not False
        user_name = None if resource.user_name == row["email"] else resource.user_name
        await conn.execute(q("scim_update_membership"), who.client_id, row["id"], role, user_name,
                           resource.external_id, _kept(resource), active)
        if not active:
            await conn.execute(q("revoke_user_sessions"), row["id"], who.client_id)
        after = await conn.fetchrow(q("scim_member"), who.client_id, row["id"])
        was_active = row["deactivated_at"] is None
        action = "update" if active == was_active else ("reactivate" if active else "deactivate")
        await audit.record(conn, who, action, "team_member", row["id"], before=_summary(row),
                           after={**(_summary(after) or {}), "via": "scim"})
        return dump(to_resource(after, base))

    @staticmethod
    def _validate(body: Any, ctx: Context, active: bool) -> User:
        """The body as a User; without `active`, the state given (never a reactivation by omission)."""
        data = need_object(body)
        if not any(k.lower() == "active" for k in data):
            data = {**data, "active": active}
        try:
            return User.model_validate(data, scim_ctx=ctx, scim_policy=POLICY)
        except PydanticValidationError as exc:
            raise validation_error(exc) from exc
        except BadRequest as exc:
            raise InvalidValueException(detail=str(exc)) from exc

    @staticmethod
    async def _row(db: asyncpg.Pool | asyncpg.Connection, who: Principal, raw_id: str) -> asyncpg.Record:
        try:
            user_id = uuid.UUID(raw_id)
        except ValueError as exc:
            raise NotFoundException(detail=f"User {raw_id} not found") from exc
        row = await db.fetchrow(q("scim_member"), who.client_id, user_id)
        if row is None:
            raise NotFoundException(detail=f"User {raw_id} not found")
        return row


def _display_name(resource: User) -> str:
    if resource.display_name:
        return resource.display_name[:200]
    if resource.name is not None:
        if resource.name.formatted:
            return resource.name.formatted[:200]
        parts = [p for p in (resource.name.given_name, resource.name.family_name) if p]
        return " ".join(parts)[:200]
    return ""
