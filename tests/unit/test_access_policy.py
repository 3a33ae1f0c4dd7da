"""Scopes and roles: the whole permission table, checked as a table."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import Forbidden
from control.policy.access import ADMIN_ONLY, FAMILIES, ROLES, role_allows, scopes_allow, valid_scope
from control.services.principal import Principal

PERMS = [f"{f}:{a}" for f in FAMILIES for a in ("read", "write")]


def test_scopes() -> None:
    assert scopes_allow(frozenset(), "gdpr:write"), "an empty scope list is a full-access key"
    assert scopes_allow(frozenset({"*"}), "team:write")
    assert scopes_allow(frozenset({"events:write"}), "events:read"), "write implies read"
    assert not scopes_allow(frozenset({"events:read"}), "events:write")
    assert scopes_allow(frozenset({"endpoints:*"}), "endpoints:write")
    assert not scopes_allow(frozenset({"endpoints:*"}), "events:read")
    with pytest.raises(ValueError):
        scopes_allow(frozenset({"events:read"}), "nonsense:read")
    assert valid_scope("event-types:read") and valid_scope("*") and not valid_scope("events:delete")


@pytest.mark.parametrize("perm", PERMS)
def test_roles(perm: str) -> None:
    family, action = perm.split(":")
    assert role_allows("admin", perm)
    assert role_allows("viewer", perm) == (action == "read" and (family not in ADMIN_ONLY or family in ("team",
                                                                                                      "billing")))
    assert role_allows("editor", perm) == (family not in ADMIN_ONLY or (action == "read" and family in ("team",
                                                                                                      "billing")))


@given(st.sampled_from(ROLES), st.sampled_from(PERMS))
def test_roles_are_ordered(role: str, perm: str) -> None:
    order = {"viewer": 0, "editor": 1, "admin": 2}
    for other in ROLES:
        if order[other] >= order[role] and role_allows(role, perm):  # type: ignore[arg-type]
            assert role_allows(other, perm)  # type: ignore[arg-type]


def test_principal_uses_scopes_for_keys_and_roles_for_people() -> None:
    client = uuid.uuid4()
    key = Principal(client, uuid.uuid4(), frozenset({"events:read"}), None)
    with pytest.raises(Forbidden, match="scope"):
        key.require("events:write")
    viewer = Principal(client, None, frozenset(), None, user_id=uuid.uuid4(), role="viewer")
    with pytest.raises(Forbidden, match="viewer"):
        viewer.require("endpoints:write")
    viewer.require("endpoints:read")
    assert viewer.actor_type == "user" and key.actor_type == "api_key"
