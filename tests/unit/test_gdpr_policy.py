"""The pure parts of GDPR export and erasure: the streamed document is one valid JSON object whatever
the pages, erasure needs the workspace's id typed back, and the tables go in a safe order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import BadRequest
from control.services.audit import REDACTED, redact
from control.services.gdpr import check_confirmation
from control.services.gdpr_erasure import erase_order
from control.services.gdpr_export import json_document

JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                   max_size=3),
                       max_leaves=8)
PAGES = st.lists(st.lists(JSONISH, max_size=3), max_size=4)


async def _pages(pages: list[list[Any]]) -> AsyncIterator[Sequence[Any]]:
    for page in pages:
        yield page


def _render(head: dict[str, Any], sections: list[tuple[str, list[list[Any]]]]) -> bytes:
    async def run() -> bytes:
        return b"".join([c async for c in json_document(head, [(n, _pages(p)) for n, p in sections])])
    return asyncio.run(run())


@given(head=st.dictionaries(st.text(max_size=6), JSONISH, max_size=3),
       sections=st.lists(st.tuples(st.text(min_size=1, max_size=6), PAGES), max_size=4,
                         unique_by=lambda s: s[0]))
def test_the_document_is_the_head_plus_one_array_per_section(head: dict[str, Any],
                                                             sections: list[tuple[str, list[list[Any]]]]) -> None:
    sections = [(n, p) for n, p in sections if n not in head]
    doc = orjson.loads(_render(head, sections))
    assert doc == {**head, **{name: [item for page in pages for item in page] for name, pages in sections}}


def test_each_page_is_one_chunk() -> None:
    async def run() -> list[bytes]:
        return [c async for c in json_document({"a": 1}, [("s", _pages([[1, 2], [], [3]]))])]
    assert asyncio.run(run()) == [b'{"a":1', b',"s":[', b"1,2", b",3", b"]", b"}"]


CLIENT = uuid.UUID("6f1f0c2e-6d35-4a4e-9b8e-2d1f0b9a7c11")


@pytest.mark.parametrize(("body", "query"), [
    ({"confirm": str(CLIENT)}, None), (None, str(CLIENT)), ({"confirm": str(CLIENT).upper()}, None),
    ({}, str(CLIENT)),
])
def test_the_workspace_id_confirms(body: Any, query: str | None) -> None:
    check_confirmation(body, query, CLIENT)


@pytest.mark.parametrize(("body", "query", "says"), [
    (None, None, "confirm: required"), ({}, None, "confirm: required"), ({"confirm": ""}, None, "required"),
    ({"confirm": str(uuid.uuid4())}, None, "does not match"), ({"confirm": 7}, None, "does not match"),
    (None, "my workspace", "does not match"), ({"confirm": str(CLIENT), "x": 1}, None, "x: unknown field"),
    (["confirm"], None, "body: expected a JSON object"),
])
def test_anything_else_is_refused_naming_the_field(body: Any, query: str | None, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_confirmation(body, query, CLIENT)
    assert says in refused.value.message


def test_erase_order_leaves_the_special_tables_to_their_own_steps() -> None:
    order = erase_order(["zeta_things", "memberships", "events", "tasks", "audit_logs", "endpoints", "clients",
                         "gdpr_erasures", "endpoint_versions", "alpha_things", "delivery_rollups"])
    assert order == ["delivery_rollups", "endpoints", "memberships", "alpha_things", "zeta_things"]


def test_redaction_reaches_every_depth_and_keeps_the_rest() -> None:
    value = {"name": "n", "signingSecret": "whsec_x", "nested": [{"keyPem": "-----BEGIN", "ok": 1}],
             "mtlsKey": None}
    assert redact(value) == {"name": "n", "signingSecret": REDACTED, "nested": [{"keyPem": REDACTED, "ok": 1}],
                             "mtlsKey": None}
