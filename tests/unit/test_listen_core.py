"""The pure parts of the client-side commands: where the server and key come from, how a `mittr
listen` endpoint is recognised, the signed request it forwards, and its secret store."""

from __future__ import annotations

import json
import stat
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.listen import Outcome, SecretStore, description_for, event_line, parse_events, signed_request
from control.remote import config_dir, read_config, resolve
from mittr_client import PolledEvent, VerificationError, verify

EVENT_ID = "0b9f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4"


def test_flag_beats_env_beats_config_beats_default() -> None:
    cfg = {"url": "https://cfg.example/", "api_key": "mtr_cfg"}
    env = {"MITTR_URL": "https://env.example", "MITTR_API_KEY": "mtr_env"}
    assert resolve("https://flag.example/", "mtr_flag", env, cfg) == resolve("https://flag.example", "mtr_flag", {}, {})
    assert resolve("https://flag.example", "mtr_flag", env, cfg).url == "https://flag.example"
    assert resolve(None, None, env, cfg).api_key == "mtr_env"
    got = resolve(None, None, {}, cfg)
    assert (got.url, got.api_key) == ("https://cfg.example", "mtr_cfg")
    got = resolve(None, None, {}, {"url": 5})
    assert (got.url, got.api_key) == ("http://127.0.0.1:8400", None)


def test_the_config_file_lives_under_xdg_config_home(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "mittr"
    assert config_dir({"HOME": str(tmp_path)}) == tmp_path / ".config" / "mittr"
    (tmp_path / "mittr").mkdir()
    (tmp_path / "mittr" / "config.toml").write_text('url = "https://m.example"\napi_key = "mtr_x"\n')
    got = resolve(None, None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert (got.url, got.api_key) == ("https://m.example", "mtr_x")
    assert read_config(tmp_path / "nothing.toml") == {}
    (tmp_path / "bad.toml").write_text("url = ")
    with pytest.raises(SystemExit, match=r"bad\.toml"):
        read_config(tmp_path / "bad.toml")


def test_events_and_description() -> None:
    assert parse_events(None) == ["*"] and parse_events(" , ") == ["*"]
    assert parse_events("order.*, invoice.paid") == ["order.*", "invoice.paid"]
    one = description_for("http://localhost:3000/webhooks", ["order.*"])
    assert one.startswith("mittr listen: ") and one != description_for("http://localhost:3001/webhooks", ["order.*"])
    assert len(description_for("http://x/" + "a" * 5000, ["*"])) == 2000   # the API's limit


@given(payload=st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3),
                            max_leaves=10),
       attempt=st.integers(1, 30))
def test_the_forwarded_request_verifies_as_a_push_would(payload: object, attempt: int) -> None:
    event = PolledEvent.from_json({"id": EVENT_ID, "eventType": "order.created", "payload": payload,
                                   "headers": {"X-Tenant": "acme"}, "createdAt": "", "attempts": 0})
    body, headers = signed_request(event, "whsec_secret", attempt, 1_700_000_000)
    assert verify("whsec_secret", body, headers, now=1_700_000_010) == payload
    assert headers["X-Mittr-Event-ID"] == EVENT_ID and headers["X-Mittr-Attempt"] == str(attempt)
    assert headers["X-Tenant"] == "acme" and headers["Content-Type"] == "application/json"
    with pytest.raises(VerificationError):
        verify("whsec_other", body, headers, now=1_700_000_010)


def test_secret_store_is_private_and_keyed_by_server_and_endpoint(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "mittr" / "listen.json")
    assert store.get("http://a", "e1") is None
    store.put("http://a", "e1", "s1")
    store.put("http://b", "e1", "s2")
    assert (store.get("http://a", "e1"), store.get("http://b", "e1")) == ("s1", "s2")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.put("http://a", "e1", None)
    assert json.loads(store.path.read_text()) == {"http://b|e1": "s2"}
    store.path.write_text("not json")
    assert store.get("http://b", "e1") is None     # a broken file is started over, not a crash


def test_event_line() -> None:
    event = PolledEvent.from_json({"id": EVENT_ID, "eventType": "order.created"})
    at = datetime(2026, 5, 1, 9, 3, 4)
    line = event_line(at, event, 1, Outcome(204, 12), True)
    assert line.startswith("09:03:04  order.created") and f"{EVENT_ID}  -> 204  12 ms  acked" in line
    line = event_line(at, event, 2, Outcome(None, 3, "ConnectError: refused"), False)
    assert "-> ERR ConnectError: refused" in line and "not acked" in line and "(attempt 2)" in line


def test_tail_shows_each_attempt_once_oldest_first_and_forgets_old_ids() -> None:
    from control.client_cli import Seen, unseen
    from mittr_client import DeliveryAttempt

    page = [DeliveryAttempt.from_json({"id": i}) for i in ("c", "b", "a")]    # newest first, as the API lists
    seen = Seen(size=3)
    new = unseen(page, seen.ids)
    assert [a.id for a in new] == ["a", "b", "c"]
    for a in new:
        seen.add(a.id)
    newer = [DeliveryAttempt.from_json({"id": "d"}), *page]
    assert [a.id for a in unseen(newer, seen.ids)] == ["d"]
    seen.add("d")
    assert seen.ids == {"b", "c", "d"}


def test_payload_from_inline_file_and_stdin(tmp_path: Path) -> None:
    import io

    from control.client_cli import payload_from

    assert payload_from('{"a": 1}', io.StringIO()) == {"a": 1}
    assert payload_from("-", io.StringIO('[1, 2]')) == [1, 2]
    (tmp_path / "p.json").write_text('{"b": true}')
    assert payload_from(f"@{tmp_path / 'p.json'}", io.StringIO()) == {"b": True}
    with pytest.raises(SystemExit, match="not JSON"):
        payload_from("{nope", io.StringIO())
    with pytest.raises(SystemExit, match="--data"):
        payload_from(f"@{tmp_path / 'missing.json'}", io.StringIO())
