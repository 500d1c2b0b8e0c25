"""The scope: the allowlist every packet is checked against, and the do-not-touch list inside it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from scanner.core.errors import UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"not a network address or CIDR: {text!r}") from None


def in_scope(address: str, scope: Iterable[str], exclude: Iterable[str] = ()) -> bool:
    """The last guard before a connection: used by the check context for every socket it opens."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return False
    if any(addr in parse_network(e) for e in exclude):
        return False
    return any(addr in parse_network(s) for s in scope)
