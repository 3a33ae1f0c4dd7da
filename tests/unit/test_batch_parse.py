"""A batch's entries are validated before anything is stored; a destination is checked once per
batch however often it repeats, and a refused one is named by the first index that has it."""

from __future__ import annotations

import pytest

from control.errors import ValidationError
from control.policy.ssrf import AddressPolicy
from control.services.batch import ITEM_FIELDS, parse_batch
from control.services.events import parse_event

POLICY = AddressPolicy.from_engine(None)   # the default: private and loopback addresses refused


def entry(i: int, destination: str) -> dict[str, object]:
    return {"idempotencyKey": f"k{i}", "destination": destination, "payload": {"i": i}}


def test_repeated_destinations_are_the_same_as_checked_one_by_one() -> None:
    urls = ["https://a.example.com/hook", "HTTPS://B.example.com:443/x?y=1", "https://a.example.com/hook"]
    events = parse_batch({"events": [entry(i, urls[i % 3]) for i in range(30)]}, POLICY)
    alone = [parse_event(entry(i, urls[i % 3]), f"k{i}", allowed=ITEM_FIELDS, policy=POLICY).destination
             for i in range(30)]
    assert [ev.destination for ev in events] == alone


def test_a_refused_destination_is_named_where_it_first_appears() -> None:
    good, bad = "https://a.example.com/hook", "http://127.0.0.1:9/x"
    items = [entry(i, good) for i in range(5)] + [entry(5, bad), entry(6, good), entry(7, bad)]
    with pytest.raises(ValidationError) as refused:
        parse_batch({"events": items}, POLICY)
    assert refused.value.message.startswith("events[5].destination")


def test_a_malformed_destination_after_good_ones_is_refused() -> None:
    items = [entry(i, "https://a.example.com/hook") for i in range(3)] + [entry(3, "not a url")]
    with pytest.raises(ValidationError) as refused:
        parse_batch({"events": items}, POLICY)
    assert refused.value.message.startswith("events[3].destination")
