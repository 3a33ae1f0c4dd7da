"""Project bodies and the delete's force flag, checked without a database."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.errors import BadRequest
from control.services.projects import ENVIRONMENTS, NAME_MAX, parse_force, parse_project


def test_create_needs_a_name_and_defaults_to_production() -> None:
    assert parse_project({"name": "Staging", "environment": "staging"}) == {"name": "Staging",
                                                                           "environment": "staging"}
    assert parse_project({"name": " Main "}) == {"name": "Main", "environment": "production"}
    with pytest.raises(BadRequest, match=r"^name: required"):
        parse_project({"environment": "test"})


def test_a_patch_changes_only_the_fields_given() -> None:
    current = {"name": "Old", "environment": "development"}
    assert parse_project({}, current) == current
    assert parse_project({"environment": "test"}, current) == {"name": "Old", "environment": "test"}
    assert parse_project({"name": "New", "environment": None}, current) == {"name": "New",
                                                                           "environment": "development"}


@settings(deadline=None)     # a loaded machine must not fail a pure check on time
@given(st.dictionaries(st.sampled_from(["name", "environment", "id", "owner"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=120), st.sampled_from(ENVIRONMENTS))))
def test_any_body_is_either_a_valid_project_or_refused_naming_a_field(body: dict[str, Any]) -> None:
    try:
        out = parse_project(body, {"name": "Kept", "environment": "production"})
    except BadRequest as exc:
        assert exc.message.split(":")[0] in {"name", "environment", "id", "owner"}
        return
    assert out["environment"] in ENVIRONMENTS
    assert 1 <= len(out["name"]) <= NAME_MAX and out["name"] == out["name"].strip()
    assert not any(ord(c) < 32 for c in out["name"])


def test_force_is_true_or_false() -> None:
    assert parse_force(None) is False and parse_force("") is False and parse_force("false") is False
    assert parse_force("true") is True
    for bad in ("1", "yes", "TRUE"):
        with pytest.raises(BadRequest, match=r"^force:"):
            parse_force(bad)
