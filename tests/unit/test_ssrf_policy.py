"""Which addresses deliveries may reach."""

from __future__ import annotations

import pytest

from control.policy.ssrf import AddressPolicy

DEFAULT = AddressPolicy.build(allow_private=False)


@pytest.mark.parametrize("addr", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "::",
])
def test_internal_addresses_refused_by_default(addr: str) -> None:
    assert DEFAULT.refusal(addr) is not None


@pytest.mark.parametrize("addr", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_allowed(addr: str) -> None:
    assert DEFAULT.refusal(addr) is None


def test_allow_private_networks_opens_internal_ranges() -> None:
    assert AddressPolicy.build(allow_private=True).refusal("127.0.0.1") is None


def test_endpoint_lists_apply_on_top() -> None:
    blocked = AddressPolicy.build(True, blocked=["127.0.0.0/8"])
    assert "blockedCidrs" in (blocked.refusal("127.0.0.1") or "")
    assert blocked.refusal("10.0.0.1") is None
    allowed = AddressPolicy.build(False, allowed=["93.184.216.0/24"])
    assert allowed.refusal("93.184.216.34") is None
    assert "allowedCidrs" in (allowed.refusal("8.8.8.8") or "")
    # an allowlist never re-opens the internal ranges
    assert AddressPolicy.build(False, allowed=["169.254.0.0/16"]).refusal("169.254.169.254") is not None


def test_garbage_is_refused() -> None:
    assert DEFAULT.refusal("not-an-ip") is not None
