"""The GDPR export carries the workspace's billing: its subscription and its invoices (and no other
workspace's)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import orjson

from api.context import ctx
from control.services.billing import BillingService
from control.services.keys import create_client
from control.services.principal import Principal
from tests.integration.conftest import Caller
from tests.integration.plans_support import plans_app  # noqa: F401 - fixture
from tests.integration.test_billing import subscribe


async def test_the_export_has_the_subscription_and_the_invoices(plans_app: Caller,  # noqa: F811
                                                                 pool: asyncpg.Pool) -> None:
    service = ctx().service(BillingService)
    start = datetime.now(UTC)
    await subscribe(service, Principal(uuid.UUID(plans_app.client_id), None, frozenset(), None),
                    {"planId": "growth"}, start)
    await service.checkout(Principal(uuid.UUID(plans_app.client_id), None, frozenset(), None),
                           {"planId": "free"}, "http://x", now=start)          # scheduled for the renewal
    other = await create_client(pool, "tenant-other")
    await subscribe(service, Principal(other["id"], None, frozenset(), None), {"planId": "scale"}, start)

    resp = await plans_app.client.get("/api/v1/gdpr/export", headers={"X-API-Key": plans_app.key})
    assert resp.status == 200
    doc = orjson.loads(await resp.read())
    [sub] = doc["subscriptions"]
    assert (sub["provider"], sub["planId"], sub["cycle"], sub["status"], sub["cancelAtPeriodEnd"]) == (
        "local", "growth", "monthly", "active", False)
    assert sub["scheduledChange"] == {"planId": "free", "cycle": "monthly"} and sub["creditCents"] == 0
    [invoice] = doc["invoices"]
    assert (invoice["number"], invoice["reason"], invoice["planId"], invoice["totalCents"], invoice["status"]) == (
        1, "checkout", "growth", 4900, "open")
    assert invoice["lines"] == [{"description": "Growth (monthly)", "amountCents": 4900}]
    assert "scale" not in [s["planId"] for s in doc["subscriptions"]] and len(doc["invoices"]) == 1
