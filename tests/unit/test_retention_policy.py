"""Retention's pure parts: the UUIDv7 floor of a cutoff, cutoffs, and the [retention] settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.services.events import time_ordered_ids
from control.services.retention import RetentionPolicy, cutoff, uuid_floor
from control.settings import SettingsError, load_settings

MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


def ms(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@given(made=MOMENTS, cut=MOMENTS)
def test_an_id_sorts_below_the_floor_exactly_when_made_in_an_earlier_millisecond(made: datetime,
                                                                                 cut: datetime) -> None:
    with mock.patch("control.services.events.time.time_ns", return_value=ms(made) * 1_000_000 + 999_999):
        ids = time_ordered_ids(50)
    floor = uuid_floor(cut)
    for i in ids:
        assert (i < floor) == (ms(made) < ms(cut))
        assert i.version == 7


@given(a=MOMENTS, b=MOMENTS)
def test_floor_is_monotonic_and_a_bare_timestamp(a: datetime, b: datetime) -> None:
    if a <= b:
        assert uuid_floor(a) <= uuid_floor(b)
    assert uuid_floor(a).int == ms(a) << 80


def test_floor_clamps_and_needs_a_zone() -> None:
    assert uuid_floor(datetime(1960, 1, 1, tzinfo=UTC)).int == 0
    with pytest.raises(ValueError, match="aware"):
        uuid_floor(datetime(2025, 1, 1))


def test_cutoff() -> None:
    now = datetime(2026, 5, 18, 12, 0, tzinfo=UTC)
    assert cutoff(now, 30) == datetime(2026, 4, 18, 12, 0, tzinfo=UTC)
    assert cutoff(now, 0) is None


def test_policy_from_settings() -> None:
    p = RetentionPolicy.from_settings(load_settings(env={}))
    assert (p.events_days, p.attempts_days, p.rollups_days, p.interval_s) == (30, 30, 400, 3600)
    p = RetentionPolicy.from_settings(load_settings(env={"MITTR_RETENTION__EVENTS_DAYS": "7",
                                                         "MITTR_RETENTION__ROLLUPS_DAYS": "0"}))
    assert (p.events_days, p.attempts_days, p.rollups_days) == (7, 7, 0)   # attempts follow events
    p = RetentionPolicy.from_settings(load_settings(env={"MITTR_RETENTION__EVENTS_DAYS": "7",
                                                         "MITTR_RETENTION__ATTEMPTS_DAYS": "0"}))
    assert (p.events_days, p.attempts_days) == (7, 0)


@pytest.mark.parametrize(("text", "key"), [("events_days = -1", "events_days"),
                                           ("attempts_days = -2", "attempts_days"),
                                           ('rollups_days = "400"', "rollups_days"),
                                           ("interval_s = true", "interval_s")])
def test_policy_refuses_bad_values(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[retention]\n{text}\n")
    with pytest.raises(SettingsError, match=f"retention.{key}"):
        RetentionPolicy.from_settings(load_settings(cfg, env={}))
