"""SAML and the plan: a workspace whose plan lacks the `saml` feature gets 402 FEATURE_NOT_IN_PLAN
from the admin API (DELETE excepted) and the sign-in routes, discovery says no SSO, and its
require-SSO no longer refuses password logins (nobody is locked out after a downgrade). Its own
module: the plans app is a second app in the process."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from control.services.users import add_member, create_user, hashed_password
from tests.integration.conftest import Caller
from tests.integration.plans_support import plans_app  # noqa: F401 - fixture
from tests.support.saml_idp import SamlIdp

PASSWORD = "correct horse battery staple 7"


@pytest.fixture
def idp(tmp_path: Any) -> SamlIdp:
    return SamlIdp.make(tmp_path)


async def test_the_plan_gate(plans_app: Caller, pool: Any, idp: SamlIdp) -> None:  # noqa: F811
    await pool.execute("UPDATE clients SET plan_id = 'growth' WHERE id = $1", uuid.UUID(plans_app.client_id))
    status, body, _ = await plans_app.call("POST", "/api/v1/sso/saml", {"slug": "okta", "metadataXml": idp.metadata()})
    assert status == 402 and body["code"] == "FEATURE_NOT_IN_PLAN" and body["feature"] == "saml", body
    await pool.execute("UPDATE clients SET plan_id = 'scale' WHERE id = $1", uuid.UUID(plans_app.client_id))
    status, made, _ = await plans_app.call("POST", "/api/v1/sso/saml", {
        "slug": "okta", "metadataXml": idp.metadata(), "emailDomains": ["gate.example"], "requireSso": True})
    assert status == 201, made
    await pool.execute("UPDATE clients SET plan_id = 'growth' WHERE id = $1", uuid.UUID(plans_app.client_id))
    resp = await plans_app.client.get(urlsplit(made["sp"]["loginUrl"]).path)
    await resp.read()
    assert resp.status == 402
    resp = await plans_app.client.get("/auth/sso/discover?email=a%40gate.example")
    assert orjson.loads(await resp.read()) == {"sso": False}
    user = await create_user(pool, "gate@gate.example", verified=True,
                             password_hash=await hashed_password(PASSWORD, "gate@gate.example"))
    await add_member(pool, uuid.UUID(plans_app.client_id), user["id"], "admin")
    status, body, _ = await plans_app.call("POST", "/auth/login", {"email": "gate@gate.example",
                                                                   "password": PASSWORD}, key="")
    assert status == 200, "without SAML in the plan, require-SSO cannot lock members out"
    status, _, _ = await plans_app.call("DELETE", f"/api/v1/sso/saml/{made['id']}")
    assert status == 204, "a downgraded workspace can still remove its connection"
