"""The local billing provider's page links: only ours, only of their kind, only until they expire."""

from __future__ import annotations

import time
import uuid

from control.crypto import new_key
from control.policy.plans import Catalogue
from control.services.account import catalogue
from control.services.billing_providers import LINK_TTL_S, LocalProvider, provider_for
from control.settings import load_settings


def provider(key: str | None = None) -> tuple[LocalProvider, Catalogue]:
    settings = load_settings(env={"MITTR_SECURITY__ENCRYPTION_KEY": key or new_key()})
    return LocalProvider(settings), catalogue(settings)


def test_a_link_reads_back_and_only_as_its_kind() -> None:
    local, plans = provider()
    client, plan = uuid.uuid4(), plans.default
    token = local.link("checkout", client, "none", plan, "annual")
    link = local.read("checkout", token)
    assert link is not None and (link.client_id, link.state, link.plan_id, link.cycle) == (
        client, "none", plan.id, "annual")
    assert local.read("portal", token) is None
    portal = local.link("portal", client, "active@x")
    assert local.read("portal", portal) is not None and local.read("checkout", portal) is None


def test_forged_tampered_foreign_and_expired_links_are_refused() -> None:
    local, _ = provider()
    token = local.link("portal", uuid.uuid4(), "none")
    assert local.read("portal", token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert local.read("portal", "") is None and local.read("portal", "x" * 5000) is None
    other, _ = provider()
    assert other.read("portal", token) is None, "another key did not make it"
    assert local.read("portal", token, now=time.time() + LINK_TTL_S + 5) is None
    assert local.read("portal", token, now=time.time() + LINK_TTL_S - 60) is not None


def test_manual_is_the_local_provider() -> None:
    settings = load_settings(env={"MITTR_BILLING__PROVIDER": "manual", "MITTR_SECURITY__ENCRYPTION_KEY": new_key()})
    made = provider_for(settings)
    assert isinstance(made, LocalProvider) and made.name == "local"
