"""The team's pure rules: a workspace keeps an admin; an invitation's state; the invitation mail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from control.policy.access import ROLES
from control.services.team import invitation_mail, invitation_status, leaves_an_admin

PEOPLE = [uuid.UUID(int=i) for i in range(5)]


@given(st.sets(st.sampled_from(PEOPLE)), st.sampled_from(PEOPLE), st.sampled_from([*ROLES, None]))
def test_an_admin_remains_exactly_when_the_outcome_has_one(admins: set[uuid.UUID], member: uuid.UUID,
                                                           new_role: str | None) -> None:
    after = {a for a in admins if a != member} | ({member} if new_role == "admin" else set())
    assert leaves_an_admin(admins, member, new_role) is bool(after)   # type: ignore[arg-type]


def test_the_last_admin_cases() -> None:
    a, b = PEOPLE[:2]
    assert not leaves_an_admin({a}, a, "editor") and not leaves_an_admin({a}, a, None)
    assert leaves_an_admin({a}, a, "admin")
    assert leaves_an_admin({a, b}, a, None) and leaves_an_admin({a}, b, None)
    assert not leaves_an_admin(set(), b, "viewer"), "a workspace without admins gets none by demoting others"
    assert leaves_an_admin(set(), b, "admin")


def test_invitation_status() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert invitation_status(None, now + timedelta(seconds=1), now) == "pending"
    assert invitation_status(None, now, now) == "expired"
    assert invitation_status(now - timedelta(days=1), now - timedelta(hours=1), now) == "accepted"


def test_the_mail_names_the_workspace_the_role_and_the_link() -> None:
    subject, text = invitation_mail("Acme", "Ada", "admin", "https://m.example/accept-invite?token=t", 168)
    assert subject == "You are invited to Acme on Mittr"
    assert "Ada has invited you" in text and "an admin" in text and "7 days" in text
    assert "https://m.example/accept-invite?token=t\n" in text
    _, text = invitation_mail("Acme", "", "viewer", "l", 12)
    assert text.startswith("You have been invited") and "a viewer" in text and "12 hours" in text
