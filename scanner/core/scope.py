"""The scope: the allowlist every packet is checked against, and the do-not-touch list inside it.

Parsed once into a `Scope` (targets, the check context and the "same scope" look-ups share it); the texts the
user wrote are kept for storage, so the stored scan (JSON lists of strings) keeps its format.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from scanner.core.errors import UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"not a network address or CIDR: {text!r}") from None


@dataclass(frozen=True, eq=False)
class Scope:
    """Allowlist and do-not-touch networks, in the order given. Two scopes are equal when they name the same
    networks, whatever the order or spelling (`10.0.0.1/24` is `10.0.0.0/24`); `texts` and `exclude_texts` are
    what the user wrote, as stored with the scan."""

    allow: tuple[IPNetwork, ...]
    exclude: tuple[IPNetwork, ...] = ()
    texts: tuple[str, ...] = ()
    exclude_texts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, allow: Iterable[str], exclude: Iterable[str] = ()) -> Scope:
        """UsageError naming the first text that is not an address or CIDR."""
        texts, exclude_texts = tuple(allow), tuple(exclude)
        return cls(tuple(parse_network(t) for t in texts), tuple(parse_network(t) for t in exclude_texts),
                   texts, exclude_texts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scope):
            return NotImplemented
        return (set(self.allow), set(self.exclude)) == (set(other.allow), set(other.exclude))

    def __hash__(self) -> int:
        return hash((frozenset(self.allow), frozenset(self.exclude)))

    def allows(self, address: IPAddress) -> bool:
        """Inside the allowlist (the do-not-touch list aside)."""
        return any(address in net for net in self.allow)      # `in` is False across IPv4/IPv6

    def excludes(self, address: IPAddress) -> bool:
        """On the do-not-touch list."""
        return any(address in net for net in self.exclude)

    def contains(self, address: str | IPAddress) -> bool:
        """May a packet go to `address`? The last guard before a connection (CheckContext.allow)."""
        if isinstance(address, str):
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                return False
        return self.allows(address) and not self.excludes(address)

    def same_allowlist(self, other: Scope) -> bool:
        """Scans of the same allowlist are comparable (diffs, trends), whatever their do-not-touch lists."""
        return set(self.allow) == set(other.allow)

    def describe(self) -> str:
        """The allowlist as networks, for messages."""
        return ", ".join(map(str, self.allow))


def in_scope(address: str, scope: Iterable[str], exclude: Iterable[str] = ()) -> bool:
    """`Scope.parse(scope, exclude).contains(address)` for callers that hold the texts."""
    return Scope.parse(scope, exclude).contains(address)
