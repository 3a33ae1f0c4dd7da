"""An app whose plan catalogue has paid plans besides the self-hosted default (for the usage,
plan and billing tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from blacksheep.testing import TestClient

from control.services.keys import create_client, create_key
from control.settings import load_settings
from tests.integration.conftest import Caller

PLANS = """
[plans.self-hosted]
name = "Self-hosted"
monthly_price_cents = 0
annual_price_cents = 0
monthly_event_quota = "unlimited"
endpoints = "unlimited"
max_rate_limit_per_sec = "unlimited"
retention_days = "unlimited"
features = ["*"]

[plans.free]
name = "Free"
monthly_price_cents = 0
annual_price_cents = 0
monthly_event_quota = 20
endpoints = 2
max_rate_limit_per_sec = 10
retention_days = 7
features = []

[plans.growth]
name = "Growth"
monthly_price_cents = 4900
annual_price_cents = 49000
monthly_event_quota = 1000
endpoints = 50
max_rate_limit_per_sec = 500
retention_days = 30
features = ["alerting", "transformations"]

[plans.scale]
name = "Scale"
monthly_price_cents = 19900
annual_price_cents = 199000
monthly_event_quota = 100000
endpoints = "unlimited"
max_rate_limit_per_sec = "unlimited"
retention_days = 90
features = ["*"]
"""


@pytest.fixture
async def plans_app(db_url: str, pool: Any, tmp_path: Path) -> AsyncIterator[Caller]:
    """The app with PLANS as its catalogue (default: self-hosted); one workspace with an admin key."""
    from api.app import create_app

    path = tmp_path / "plans.toml"
    path.write_text(PLANS)
    settings = load_settings(env={"DATABASE_URL": db_url, "MITTR_API__MAX_BODY_BYTES": "65536",
                                  "MITTR_ACCOUNT__PLANS_FILE": str(path)})
    app = create_app(settings)
    await app.start()
    client_row = await create_client(pool, "tenant-plans")
    key = await create_key(pool, client_row["id"], "admin")
    try:
        yield Caller(TestClient(app), key.key, str(client_row["id"]))
    finally:
        await app.stop()
