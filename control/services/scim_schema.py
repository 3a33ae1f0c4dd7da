"""What /scim/v2 serves and accepts, declared once with scim2-models: the User resource as Mittr
stores it, and the discovery documents (ServiceProviderConfig, ResourceTypes, Schemas) derived from
that one declaration, so the published schema cannot drift from what the server validates.

The User schema is the core one (urn:ietf:params:scim:schemas:core:2.0:User) narrowed to the
attributes Mittr keeps: an IdP reads from /Schemas what it may send, and every attribute listed
round-trips. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import EmailStr
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ComplexAttribute,
    Context,
    ETag,
    ExtensibleStringEnum,
    Filter,
    Meta,
    Patch,
    Required,
    Resource,
    ResourceType,
    Schema,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
MEDIA_TYPE = b"application/scim+json"
MAX_RESULTS = 100          # count is clamped to this (RFC 7644 §3.4.2.4 lets the provider cap it)
MAX_FILTER_CHARS = 1000
MAX_BODY_BYTES = 64 * 1024


class RoleValue(ExtensibleStringEnum):
    """Mittr's roles, published as canonicalValues; matched case-insensitively."""
    admin = "admin"
    editor = "editor"
    viewer = "viewer"


class UserName(ComplexAttribute):
    formatted: str | None = None
    """The full name, formatted for display."""

    family_name: str | None = None
    """The family (last) name."""

    given_name: str | None = None
    """The given (first) name."""


class UserEmail(ComplexAttribute):
    class Type(ExtensibleStringEnum):
        work = "work"
        home = "home"
        other = "other"

    value: Annotated[EmailStr | None, Required.true] = None
    """An e-mail address; the primary one (else the first) is the new account's login address."""

    type: Type | None = None
    """work, home or other."""

    primary: bool | None = None
    """The preferred address."""


class UserRole(ComplexAttribute):
    value: RoleValue | None = None
    """admin, editor or viewer: the member's role in the workspace."""

    display: str | None = None
    """A label for the role, kept as sent."""

    type: str | None = None
    """A label for the kind of role, kept as sent."""

    primary: bool | None = None
    """The role that applies when several are sent."""


class User(Resource[Any]):
    """A member of the workspace the SCIM token belongs to."""

    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    """The IdP's unique name for the person in this workspace (often the e-mail address)."""

    name: UserName | None = None
    """The components of the person's name."""

    Name: ClassVar[type[ComplexAttribute]] = UserName

    display_name: str | None = None
    """The name shown for the person."""

    active: Annotated[bool | None, Required.true] = None
    """false deactivates the membership: no sign-in to this workspace, sessions ended. Required, as a
    member is always one or the other (it cannot be removed); a request without it is read as
    "unchanged" (POST: true)."""

    emails: Annotated[list[UserEmail] | None, Required.true] = None
    """E-mail addresses; one is needed to make the person's account."""

    Emails: ClassVar[type[ComplexAttribute]] = UserEmail

    roles: list[UserRole] | None = None
    """The member's role in the workspace (see docs/scim.md for the mapping)."""

    Roles: ClassVar[type[ComplexAttribute]] = UserRole


# What Mittr tolerates from IdPs: attributes it does not keep (title, phoneNumbers, the enterprise
# extension, ...) are accepted and dropped, so an IdP's default mappings work unchanged; Microsoft
# Entra's PATCH habits (a `remove` naming its value; `add` through a filter that matches no entry yet,
# as in roles[primary eq "True"].value) are applied as it means them.
POLICY = ScimPolicy(unknown=ScimPolicy.Unknown.ignore, remove_value_as_filter=ScimPolicy.RemoveValue.apply,
                    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create)

# The attributes kept as sent (memberships.scim_attributes), in their SCIM names.
KEPT_ATTRIBUTES = ("name", "displayName", "emails", "roles")


def _meta(resource_type: str, location: str) -> Meta:
    return Meta(resource_type=resource_type, location=location)


def user_schema(base: str) -> Schema:
    schema = User.to_schema()
    schema.name = "User"
    schema.description = "User Account: a member of the workspace"
    schema.meta = _meta("Schema", f"{base}/Schemas/{USER_SCHEMA}")
    return schema


def user_resource_type(base: str) -> ResourceType:
    resource_type = ResourceType.model_validate({"id": "User", "name": "User", "endpoint": "/Users",
                                                 "description": "User Account", "schema": USER_SCHEMA})
    resource_type.meta = _meta("ResourceType", f"{base}/ResourceTypes/User")
    return resource_type


def service_provider_config(base: str) -> ServiceProviderConfig:
    """PATCH and filtering, bearer tokens; no bulk, sort, ETag or password changes."""
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken, name="OAuth Bearer Token", primary=True,
            description="A workspace's SCIM token (POST /api/v1/scim/tokens) as Authorization: Bearer <token>")],
        meta=_meta("ServiceProviderConfig", f"{base}/ServiceProviderConfig"),
    )


def dump(obj: Any, ctx: Context = Context.RESOURCE_QUERY_RESPONSE, **kwargs: Any) -> dict[str, Any]:
    """A scim2-models object as its JSON document."""
    return obj.model_dump(scim_ctx=ctx, **kwargs)  # type: ignore[no-any-return]


def user_meta(location: str, created: datetime, modified: datetime) -> Meta:
    return Meta(resource_type="User", created=created, last_modified=modified, location=location)
