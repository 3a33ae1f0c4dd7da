"""The OpenAPI document tells the truth: what its patterns and ranges admit, the API's own validators
accept (so a client built from the document is not refused), checked on values drawn from the
document's schemas. Also the route table's parameter declarations."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import api.app  # noqa: F401 - registers every route
from api.handlers.alerting import CONDITION, RULE_BODY
from api.handlers.auth import NEW_PASSWORD
from api.handlers.connectors import EMAIL
from api.handlers.endpoints import CIDRS, JSONPATH, VERSION
from api.handlers.events import HEADERS_SCHEMA, IDEMPOTENCY_KEY, URL_SCHEMA
from api.routes import RouteError, RouteTable, openapi_document
from api.routing import ROUTES
from control.errors import ApiError
from control.policy.alert_rules import parse_cooldown, parse_window, template_field
from control.policy.destinations import DestinationError, parse_broker
from control.policy.jsonpath import compile_path
from control.policy.passwords import COMMON, check_strength
from control.services.audit import _json as audit_json_text
from control.services.endpoints import _parse
from control.services.events import idempotency_key
from control.services.users import parse_email
from control.validate import cidr_list, headers_field, no_nul, str_field, url_field


def matching(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Strings the schema's pattern (and length bounds) admit."""
    lo, hi = schema.get("minLength", 0), schema.get("maxLength", 10_000)
    return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= hi)


@settings(max_examples=30)
@given(matching(URL_SCHEMA))
def test_a_documented_url_is_accepted(url: str) -> None:
    assert url_field(url, "url") == url


@settings(max_examples=30)
@given(matching(JSONPATH))
def test_a_documented_jsonpath_compiles(path: str) -> None:
    compiled = compile_path(path)
    assert compiled.expr == path
    found, _ = compiled.get({})
    assert found == (not compiled.steps), "only the root path finds something in an empty document"


@settings(max_examples=30)
@given(matching(CONDITION["properties"]["window"]))
def test_a_documented_window_is_accepted(window: str) -> None:
    assert 60 <= parse_window(window) <= 7 * 86400


@settings(max_examples=30)
@given(matching(RULE_BODY["properties"]["cooldown"]))
def test_a_documented_cooldown_is_accepted(cooldown: str) -> None:
    assert 0 <= parse_cooldown(cooldown) <= 7 * 86400


@settings(max_examples=30)
@given(matching(EMAIL))
def test_a_documented_notification_address_is_an_address(address: str) -> None:
    assert "@" in address


@settings(max_examples=30)
@given(st.from_regex(re.compile(NEW_PASSWORD["pattern"]), fullmatch=False).filter(
    lambda p: 8 <= len(p) <= 128 and p not in COMMON and p.lower() not in COMMON))
def test_a_documented_new_password_passes_the_rule(password: str) -> None:
    assert check_strength(password, "someone.else@example.com") == password


def test_the_documented_login_address_pattern_is_the_servers() -> None:
    from api.handlers.auth import _EMAIL
    for address in ("alice@example.com", "a.b+c@sub.example.org"):
        assert re.match(_EMAIL["pattern"], address) and parse_email(address)
    for address in ("alice@", "alice@-x.com", "al ice@example.com"):
        assert not re.match(_EMAIL["pattern"], address)
        with pytest.raises(ApiError):
            parse_email(address)


@settings(max_examples=30)
@given(st.dictionaries(matching(HEADERS_SCHEMA["propertyNames"]),
                       matching(next(iter(HEADERS_SCHEMA["patternProperties"].values()))), max_size=5))
def test_documented_header_names_are_accepted_unless_mittr_sets_them(headers: dict[str, str]) -> None:
    reserved = set(HEADERS_SCHEMA["propertyNames"]["not"]["enum"])
    headers = {k: v for k, v in headers.items() if k.lower() not in reserved}
    assert headers_field(headers, "headers") == headers


@settings(max_examples=30)
@given(st.one_of(*(matching(p) for p in CIDRS["items"]["anyOf"])))
def test_a_documented_cidr_parses(cidr: str) -> None:
    assert cidr_list([cidr], "allowedCidrs") == [cidr]


@settings(max_examples=30)
@given(matching(IDEMPOTENCY_KEY))
def test_a_documented_idempotency_key_is_accepted(key: str) -> None:
    assert idempotency_key(key) == key


def test_a_malformed_delivery_mode_is_a_400_not_a_crash() -> None:
    """Found by schemathesis once the document named the modes: `deliveryMode: {}` was a 500."""
    with pytest.raises(ApiError) as caught:
        _parse({"deliveryMode": {}, "eventTypes": ["a"]}, None)
    assert caught.value.status == 400


def test_version_numbers_are_integers_in_paths_and_required_in_the_diff_query() -> None:
    doc = openapi_document(ROUTES, "t")
    get_version = doc["paths"]["/api/v1/endpoints/{id}/versions/{n}"]["get"]["parameters"]
    assert {p["name"]: p["schema"] for p in get_version}["n"] == VERSION
    diff = doc["paths"]["/api/v1/endpoints/{id}/versions/diff"]["get"]["parameters"]
    assert {p["name"]: p["required"] for p in diff if p["in"] == "query"} == {"v1": True, "v2": True}
    create = doc["paths"]["/api/v1/events"]["post"]["parameters"]
    assert [(p["name"], p["required"], p["schema"]) for p in create if p["in"] == "header"] == \
        [("X-Idempotency-Key", True, IDEMPOTENCY_KEY)]


def test_a_path_parameter_schema_must_name_a_parameter_of_the_path() -> None:
    table = RouteTable()

    async def handler() -> Any:
        raise AssertionError

    with pytest.raises(RouteError):
        table.add("GET", "/x/{id}", "s", "t", None, path_params={"n": VERSION})(handler)


@pytest.mark.parametrize("call", [
    lambda: str_field("a\x00b", "name"),
    lambda: headers_field({"X-A": "a\x00"}, "headers"),
    lambda: _parse({"url": "https://a.example", "eventTypes": ["x"],
                    "filter": [{"field": "$.a", "operator": "eq", "value": "\x00"}]}, None),
    lambda: template_field("\x00", "message"),
    lambda: no_nul({"a": ["\x00"]}, "metadata"),
])
def test_nul_characters_are_a_400_not_a_database_error(call: Any) -> None:
    """Postgres text and jsonb cannot hold NUL: refused up front (schemathesis found the 500s)."""
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == 400


@pytest.mark.parametrize("url", ["amqps://[oops/x", "amqp://host:99999"])
def test_a_broker_url_urlsplit_refuses_is_a_400(url: str) -> None:
    with pytest.raises(DestinationError):
        parse_broker({"type": "rabbitmq", "url": url, "routingKey": "k"}, lambda s: s)


def test_an_audit_copy_of_a_payload_with_nul_fits_jsonb() -> None:
    """An edited payload (bytes, so NUL is fine there) is copied into the audit row's jsonb, which
    cannot hold NUL: the copy shows U+FFFD instead (schemathesis found the 500). An escaped
    backslash followed by `u0000` is text and stays as it is."""
    out = audit_json_text({"k\x00": ["\x00", "\\u0000", "\\\x00"]})
    assert out is not None and "\\u0000\"" not in out.replace("\\\\u0000", "")
    assert orjson.loads(out) == {"k\ufffd": ["\ufffd", "\\u0000", "\\\ufffd"]}
