"""The pure storageConfig / brokerConfig policy: validation, sealing, what is shown, key layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.policy.destinations import (
    DestinationError,
    masked,
    object_key,
    opened,
    parse_broker,
    parse_storage,
    shown,
)


def seal(text: str) -> str:
    return "sealed:" + text[::-1]


def unseal(text: str) -> str:
    return text.removeprefix("sealed:")[::-1]


def test_s3_secret_is_sealed_hidden_and_kept_by_a_patch_without_it() -> None:
    cfg = {"type": "s3", "bucket": "hooks", "accessKeyId": "AK", "secretAccessKey": "top-secret"}
    stored = parse_storage(cfg, seal)
    assert "top-secret" not in str(stored) and "top-secret" not in str(shown(stored))
    assert opened(stored, unseal)["secretAccessKey"] == "top-secret"
    patched = parse_storage({k: v for k, v in cfg.items() if k != "secretAccessKey"}, seal, stored)
    assert opened(patched, unseal)["secretAccessKey"] == "top-secret"
    with pytest.raises(DestinationError, match=r"^storageConfig\.secretAccessKey: required"):
        parse_storage({k: v for k, v in cfg.items() if k != "secretAccessKey"}, seal, None)


def test_broker_url_is_sealed_and_shown_masked() -> None:
    stored = parse_broker({"type": "rabbitmq", "url": "amqp://u:pw@host:5672/v", "routingKey": "k"}, seal)
    assert shown(stored) == {"type": "rabbitmq", "url": "amqp://u:***@host:5672/v", "exchange": "",
                             "routingKey": "k"}
    assert opened(stored, unseal)["url"] == "amqp://u:pw@host:5672/v"
    assert masked("redis://h:1/0") == "redis://h:1/0"
    echoed = parse_broker({**shown(stored), "type": "rabbitmq"}, seal, stored)     # GET body sent back
    assert opened(echoed, unseal)["url"] == "amqp://u:pw@host:5672/v"


@pytest.mark.parametrize(("cfg", "field"), [
    ({"type": "filesystem", "directory": "a/../../b"}, "storageConfig.directory"),
    ({"type": "filesystem", "directory": "a", "extra": 1}, "storageConfig.extra"),
    ({"type": "filesystem", "directory": "a", "gzip": "yes"}, "storageConfig.gzip"),
    ({"type": "s3", "bucket": "UPPER", "accessKeyId": "a", "secretAccessKey": "s"}, "storageConfig.bucket"),
    ({"type": "s3", "bucket": "bkt", "accessKeyId": "a", "secretAccessKey": "s", "endpointUrl": "ftp://x"},
     "storageConfig.endpointUrl"),
])
def test_bad_storage_configs_name_the_field(cfg: dict[str, object], field: str) -> None:
    with pytest.raises(DestinationError, match=rf"^{field}"):
        parse_storage(cfg, seal)


def test_filesystem_refused_without_a_storage_root() -> None:
    with pytest.raises(DestinationError, match="storage_root"):
        parse_storage({"type": "filesystem", "directory": "d"}, seal, filesystem_allowed=False)


@given(st.text(max_size=40))
def test_relative_directories_never_escape(directory: str) -> None:
    try:
        stored = parse_storage({"type": "filesystem", "directory": directory}, seal)
    except DestinationError:
        return
    parts = stored["directory"].split("/") if stored["directory"] else []
    assert not stored["directory"].startswith("/") and ".." not in parts and "\x00" not in stored["directory"]


def test_object_key_layout() -> None:
    assert object_key("p/q", 2024, 3, 7, 5, "b1", True) == "p/q/2024/03/07/05/b1.ndjson.gz"
    assert object_key("", 2024, 12, 31, 23, "b2", False) == "2024/12/31/23/b2.ndjson"
