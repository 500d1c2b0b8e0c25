"""Targets, scope allowlist and do-not-touch list. Refusal happens here, before any packet."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from scanner.core.errors import UsageError
from scanner.core.scope import IPAddress, Scope, parse_network

MAX_ADDRESSES = 65536  # a /16; larger sweeps are a mistake for a hospital scan


@dataclass
class TargetSet:
    addresses: list[str]
    names: dict[str, str] = field(default_factory=dict)   # address -> the name the user gave
    excluded: list[str] = field(default_factory=list)


def _expand_range(text: str) -> list[IPAddress]:
    """`10.0.0.5-10.0.0.9` or `10.0.0.5-9`."""
    start_text, _, end_text = text.partition("-")
    try:
        start = ipaddress.ip_address(start_text.strip())
        if "." in end_text or ":" in end_text:
            end = ipaddress.ip_address(end_text.strip())
        else:
            if start.version != 4:
                raise ValueError
            end = ipaddress.ip_address(f"{str(start).rsplit('.', 1)[0]}.{int(end_text)}")
    except ValueError:
        raise UsageError(f"not an address range: {text!r}") from None
    if end.version != start.version or int(end) < int(start):
        raise UsageError(f"address range runs backwards or mixes families: {text!r}")
    if int(end) - int(start) + 1 > MAX_ADDRESSES:
        raise UsageError(f"address range larger than {MAX_ADDRESSES} addresses: {text!r}")
    return [ipaddress.ip_address(i) for i in range(int(start), int(end) + 1)]


def _resolve(name: str) -> list[IPAddress]:
    if not name or any(c.isspace() for c in name) or name.startswith("-"):
        raise UsageError(f"not a valid target: {name!r}")
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UsageError(f"cannot resolve target name {name!r}") from None
    seen: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if addr not in seen:
            seen.append(addr)
    return seen[:1]  # the first address, as a client would connect


def expand_target(text: str) -> tuple[list[IPAddress], str | None]:
    """Return the addresses a target names, and the name when it was a host name."""
    text = text.strip()
    if not text:
        raise UsageError("empty target")
    if "/" in text:
        net = parse_network(text)
        if net.num_addresses > MAX_ADDRESSES:
            raise UsageError(f"network larger than {MAX_ADDRESSES} addresses: {text!r}")
        hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
        return hosts, None
    try:
        return [ipaddress.ip_address(text)], None
    except ValueError:
        pass
    if "-" in text and text[0].isdigit():
        return _expand_range(text), None
    return _resolve(text), text


def build_target_set(targets: Iterable[str], scope: Scope | Iterable[str], exclude: Iterable[str] = ()
                     ) -> TargetSet:
    """Expand targets, refuse anything outside the scope, drop do-not-touch addresses.

    `scope` is the scan's Scope; texts (allowlist, and `exclude`) are parsed into one here."""
    if isinstance(scope, Scope):
        if exclude:
            raise ValueError("the do-not-touch list belongs in the Scope")
    else:
        scope = Scope.parse(scope, exclude)
    if not scope.allow:
        raise UsageError("a scope is required (--scope CIDR): tcmscan never scans outside an allowlist")
    addresses: list[str] = []
    names: dict[str, str] = {}
    excluded: list[str] = []
    targets = list(targets)
    if not targets:
        raise UsageError("no targets given")
    for text in targets:
        expanded, name = expand_target(text)
        for addr in expanded:
            if not scope.allows(addr):
                raise UsageError(f"target {text!r} ({addr}) is outside the scope {scope.describe()}")
            s = str(addr)
            if scope.excludes(addr):
                if s not in excluded:
                    excluded.append(s)
                continue
            if s not in addresses:
                addresses.append(s)
                if name:
                    names[s] = name
        if len(addresses) > MAX_ADDRESSES:
            raise UsageError(f"more than {MAX_ADDRESSES} target addresses")
    return TargetSet(addresses=addresses, names=names, excluded=excluded)
