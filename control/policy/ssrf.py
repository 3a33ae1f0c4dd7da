"""Which addresses a delivery may connect to. Checked on every resolved address at connect time."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Internal, special-purpose and metadata ranges: refused unless engine.allow_private_networks.
INTERNAL_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "100::/64", "2001::/32", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8",
))


def _embedded_v4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """IPv4 hidden in an IPv6 address (mapped, NAT64, 6to4) is judged as that IPv4 address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if addr.sixtofour is not None:
            return addr.sixtofour
    return None


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()
    blocked: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, allow_private: bool, allowed: Iterable[str] = (), blocked: Iterable[str] = ()) -> AddressPolicy:
        return cls(allow_private,
                   tuple(ipaddress.ip_network(c, strict=False) for c in allowed),
                   tuple(ipaddress.ip_network(c, strict=False) for c in blocked))

    def refusal(self, address: str | IPAddress) -> str | None:
        """None when the address may be used; otherwise why not."""
        try:
            addr = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return f"{address!r} is not an IP address"
        judged = _embedded_v4(addr) or addr
        if not self.allow_private:
            for net in INTERNAL_NETWORKS:
                if judged.version == net.version and judged in net:
                    return f"{addr} is in the internal range {net} (set engine.allow_private_networks to allow)"
        for net in self.blocked:
            if judged.version == net.version and judged in net:
                return f"{addr} is in the endpoint's blockedCidrs {net}"
        if self.allowed and not any(judged.version == n.version and judged in n for n in self.allowed):
            return f"{addr} is outside the endpoint's allowedCidrs"
        return None
