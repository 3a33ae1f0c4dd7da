"""Which addresses deliveries may reach."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy.ssrf import AddressPolicy, literal_address

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


# Metadata and never-usable addresses, and the IPv4 hidden in IPv6 transition forms.

PRIVATE = AddressPolicy.build(allow_private=True)
METADATA_OPEN = AddressPolicy.build(allow_private=True, allow_metadata=True)
POLICIES = [DEFAULT, PRIVATE, METADATA_OPEN, AddressPolicy.build(False, allow_metadata=True)]
METADATA = ["169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "168.63.129.16",
            "192.0.0.192", "fd00:ec2::254", "fd00:ec2::23", "fd20:ce::254", "fe80::a9fe:a9fe", "169.254.0.1",
            "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::ffff:0:a9fe:a9fe"]
NEVER = ["0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::",
         "::127.0.0.1", "::8.8.8.8", "ff02::1", "100::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
         "64:ff9b:1::808:808", "::ffff:0.0.0.0", "64:ff9b::e000:1", "2002:e000:1::1"]


@pytest.mark.parametrize("addr", METADATA)
def test_metadata_needs_its_own_setting(addr: str) -> None:
    for policy in (DEFAULT, PRIVATE, AddressPolicy.build(False, allow_metadata=True)):
        assert "metadata" in (policy.refusal(addr) or ""), (policy, addr)
    assert METADATA_OPEN.refusal(addr) is None


@pytest.mark.parametrize("addr", NEVER)
def test_unusable_addresses_are_refused_whatever_the_settings(addr: str) -> None:
    for policy in POLICIES:
        assert "never delivered to" in (policy.refusal(addr) or ""), (policy, addr)


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1", "10.0.0.1", "fd12:3456::1", "::ffff:127.0.0.1",
                                  "64:ff9b::a00:1"])
def test_private_networks_setting_keeps_loopback_and_private_usable(addr: str) -> None:
    assert DEFAULT.refusal(addr) is not None
    assert PRIVATE.refusal(addr) is None


def v4_forms(v4: ipaddress.IPv4Address) -> list[str]:
    """The same IPv4 address written inside IPv6: mapped, translated, NAT64 and 6to4."""
    n = int(v4)
    ints = [(0xFFFF << 32) | n, (0xFFFF << 48) | n, (0x64FF9B << 96) | n, (0x2002 << 112) | (n << 80) | 1]
    return [str(ipaddress.IPv6Address(i)) for i in ints]


@settings(max_examples=300, deadline=None)
@given(v4=st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)), which=st.integers(0, 3))
def test_embedded_ipv4_is_judged_like_the_ipv4_itself(v4: ipaddress.IPv4Address, which: int) -> None:
    policy = POLICIES[which]
    direct = policy.refusal(v4) is None
    for form in v4_forms(v4):
        assert (policy.refusal(form) is None) == direct, (form, v4, policy)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 2**32 - 1))
def test_ipv4_compatible_is_always_refused(n: int) -> None:
    for policy in POLICIES:
        assert policy.refusal(ipaddress.IPv6Address(n)) is not None


@pytest.mark.parametrize(("host", "addr"), [
    ("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("[::1]", "::1"), ("127.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0251.0376.0251.0376", "169.254.169.254"),
    ("LOCALHOST", "127.0.0.1"), ("api.localhost", "127.0.0.1"), ("169.254.169.254.", "169.254.169.254"),
])
def test_literal_hosts_are_read_as_the_resolver_would(host: str, addr: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(addr)


@pytest.mark.parametrize("host", ["example.com", "cafe.bad", "1e100.net", "metadata", "xn--80ak6aa92e.com"])
def test_names_are_left_to_connect_time(host: str) -> None:
    assert literal_address(host) is None and DEFAULT.host_refusal(host) is None


@settings(max_examples=200, deadline=None)
@given(net=st.one_of(
    st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False), st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False), st.integers(0, 2**128 - 1),
              st.integers(0, 128))),
    pick=st.integers(0, 2**128 - 1), which=st.integers(0, 3))
def test_an_allowlist_entry_is_refused_only_if_nothing_in_it_could_be_reached(
        net: ipaddress.IPv4Network | ipaddress.IPv6Network, pick: int, which: int) -> None:
    policy = POLICIES[which]
    if policy.network_refusal(str(net)) is not None:
        inside = net[pick % net.num_addresses]
        assert policy.refusal(inside) is not None, (net, inside)


def test_allowlist_entries_inside_refused_ranges() -> None:
    assert "never delivered to" in (PRIVATE.network_refusal("224.0.0.0/24") or "")
    assert "metadata" in (PRIVATE.network_refusal("169.254.169.254/32") or "")
    assert METADATA_OPEN.network_refusal("169.254.169.254/32") is None
    assert "allow_private_networks" in (DEFAULT.network_refusal("10.1.0.0/16") or "")
    assert PRIVATE.network_refusal("10.1.0.0/16") is None
    assert PRIVATE.network_refusal("::1/128") is None and PRIVATE.network_refusal("0.0.0.0/0") is None


def test_from_engine_reads_the_settings() -> None:
    assert AddressPolicy.from_engine(None) == AddressPolicy()
    engine = {"allow_private_networks": True, "allow_metadata_addresses": True}
    assert AddressPolicy.from_engine(engine, ["1.2.3.0/24"]) == AddressPolicy.build(True, ["1.2.3.0/24"],
                                                                                    allow_metadata=True)
