"""Which addresses a delivery may connect to.

Pure, so one policy serves both places it matters: every resolved address at connect time (the
shard's sender, DNS rebinding included), and literal-IP URLs and allowlists when an endpoint or a
direct event is accepted (a user learns at once, not from a dead event).

Three tiers, judged on the address and on any IPv4 address embedded in it:
- unusable: never a webhook receiver whatever the settings (unspecified, multicast, reserved and
  broadcast, deprecated or ambiguous IPv6 transition forms);
- metadata: link-local and cloud metadata services, where instance credentials live; refused even
  with `engine.allow_private_networks` unless `engine.allow_metadata_addresses` is on too;
- internal: loopback, private, CGNAT, documentation and benchmarking ranges; refused unless
  `engine.allow_private_networks`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


UNUSABLE: tuple[IPNetwork, ...] = _nets(
    "0.0.0.0/8",        # "this network": connecting to 0.0.0.0 reaches the local host
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and 255.255.255.255 broadcast
    "::/96",            # unspecified and IPv4-compatible (deprecated); ::1 is judged as loopback
    "100::/64",         # discard-only
    "2001::/32",        # Teredo: the real peer is hidden behind a relay
    "64:ff9b:1::/48",   # local-use NAT64: the embedded IPv4's position is site-defined
    "ff00::/8",         # multicast
)
METADATA: tuple[IPNetwork, ...] = _nets(
    "169.254.0.0/16",     # link-local: IMDS 169.254.169.254 (AWS, GCP, Azure, OCI...), ECS 169.254.170.2
    "fe80::/10",          # link-local
    "fd00:ec2::/32",      # AWS over IPv6: IMDS fd00:ec2::254, EKS Pod Identity fd00:ec2::23
    "fd20:ce::254/128",   # Google Compute Engine metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",   # Azure WireServer (platform host endpoint)
    "192.0.0.192/32",     # Oracle Cloud legacy metadata
)
INTERNAL: tuple[IPNetwork, ...] = _nets(
    "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "::1/128", "2001:db8::/32", "fc00::/7", "fec0::/10",
)
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")   # SIIT IPv4-translated (RFC 2765)
# Host spellings getaddrinfo takes as IPv4 without DNS (inet_aton: `127.1`, `0x7f.1`, `2130706433`).
_LEGACY_V4 = re.compile(r"[0-9a-fx.]+")


def _in(addr: IPAddress, nets: Iterable[IPNetwork]) -> IPNetwork | None:
    return next((n for n in nets if addr.version == n.version and addr in n), None)


def embedded_v4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, translated, NAT64, 6to4): a packet to it
    ends up there, so it is judged as well."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _TRANSLATED or addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr.sixtofour


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names without any DNS lookup, else None.

    IP literals, the legacy IPv4 spellings the system resolver also accepts, and `localhost`
    names, which RFC 6761 reserves for loopback."""
    text = host.strip().strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text == "localhost" or text.endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    if _LEGACY_V4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()
    blocked: tuple[IPNetwork, ...] = ()
    allow_metadata: bool = False

    @classmethod
    def build(cls, allow_private: bool, allowed: Iterable[str] = (), blocked: Iterable[str] = (),
              allow_metadata: bool = False) -> AddressPolicy:
        return cls(allow_private,
                   tuple(ipaddress.ip_network(c, strict=False) for c in allowed),
                   tuple(ipaddress.ip_network(c, strict=False) for c in blocked),
                   allow_metadata)

    @classmethod
    def from_engine(cls, engine: Mapping[str, Any] | None, allowed: Iterable[str] = (),
                    blocked: Iterable[str] = ()) -> AddressPolicy:
        """From the `[engine]` settings (None: the safe defaults), so the API and the shards agree."""
        engine = engine or {}
        return cls.build(bool(engine.get("allow_private_networks", False)), allowed, blocked,
                         bool(engine.get("allow_metadata_addresses", False)))

    def _tiers(self) -> Iterable[tuple[tuple[IPNetwork, ...], str]]:
        """The ranges these settings refuse, in order, each with how to word the refusal."""
        yield UNUSABLE, "{} is in the reserved range {}, which is never delivered to"
        if not (self.allow_private and self.allow_metadata):
            yield METADATA, ("{} is in {}, a link-local or cloud metadata range (refused unless "
                             "engine.allow_private_networks and engine.allow_metadata_addresses are both on)")
        if not self.allow_private:
            yield INTERNAL, "{} is in the internal range {} (set engine.allow_private_networks to allow)"

    def _range_refusal(self, ip: IPAddress, shown: str) -> str | None:
        for nets, why in self._tiers():
            net = _in(ip, nets)
            if net is not None and not (ip == _LOOPBACK_V6 and nets is UNUSABLE):
                return why.format(shown, net)
        return None

    def refusal(self, address: str | IPAddress) -> str | None:
        """None when the address may be used; otherwise why not."""
        try:
            addr = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return f"{address!r} is not an IP address"
        v4 = embedded_v4(addr)
        judged = (addr,) if v4 is None else (addr, v4)
        shown = str(addr) if v4 is None else f"{addr} (IPv4 {v4})"
        for ip in judged:
            reason = self._range_refusal(ip, shown)
            if reason is not None:
                return reason
        for ip in judged:
            if (net := _in(ip, self.blocked)) is not None:
                return f"{shown} is in the endpoint's blockedCidrs {net}"
        if self.allowed and not any(_in(ip, self.allowed) for ip in judged):
            return f"{addr} is outside the endpoint's allowedCidrs"
        return None

    def host_refusal(self, host: str) -> str | None:
        """Why a URL host can never be delivered to, when that is known without DNS (a literal
        address); names are judged at connect time, on what they resolve to. Memoised: batch
        ingest asks this for every event, mostly about the same few hosts."""
        return _host_refusal(self, host)

    def network_refusal(self, cidr: str) -> str | None:
        """Why an allowlist entry can never admit anything: it lies wholly inside a refused range.
        (An allowlist only narrows; it never re-opens what the settings refuse.)"""
        net = ipaddress.ip_network(cidr, strict=False)
        for nets, why in self._tiers():
            for outer in nets:
                if (net.version == outer.version and net.subnet_of(outer)  # type: ignore[arg-type]
                        and not (nets is UNUSABLE and _LOOPBACK_V6 in net)):   # ::/96 holds ::1
                    return why.format(net, outer)
        return None


@functools.lru_cache(maxsize=4096)
def _host_refusal(policy: AddressPolicy, host: str) -> str | None:
    addr = literal_address(host)
    return None if addr is None else policy.refusal(addr)
