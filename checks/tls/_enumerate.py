"""Which versions and suites a server accepts, the sslyze/testssl way: offer every remaining candidate, note
the one the server picks, remove it, offer again, until the server refuses. A chain per version; chains run
in parallel (strictly one after another in safe mode).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from checks.tls import _probe as P
from checks.tls import _wire as wire
from checks.tls._suites import VERSIONS, WIRE_VERSION, name_of, tables

MAX_CHAIN = 400        # more probes than candidates exist: a server that never refuses is a broken one


@dataclass
class Chain:
    label: str                      # SSLv2 .. TLSv1.3, "TLSv1.3-SM" (RFC 8998), "TLCP"
    version: int
    candidates: tuple[int, ...]
    shangmi: bool = False
    accepted: list[int] = field(default_factory=list)
    stop: P.Outcome | None = None   # the outcome that ended the chain (refusal, or a failure)
    certificates: list[bytes] = field(default_factory=list)
    probes: int = 0


@dataclass
class Enumeration:
    chains: dict[str, Chain]

    def failure(self) -> P.Outcome | None:
        """The first outcome that leaves a version undetermined (timeout, protocol error)."""
        for c in self.chains.values():
            if c.stop and c.stop.kind in (P.TIMEOUT, P.PROTOCOL):
                return c.stop
        return None

    def names(self, label: str) -> list[str]:
        c = self.chains.get(label)
        if c is None:
            return []
        if label == "SSLv2":
            return [tables().sslv2.get(s, f"UNKNOWN_SSLv2_0x{s:06X}") for s in c.accepted]
        if label == "TLCP":
            return [tables().tlcp.get(s, f"UNKNOWN_0x{s:04X}") for s in c.accepted]
        return [name_of(s) for s in c.accepted]

    def versions(self) -> dict[str, list[str]]:
        out = {v: self.names(v) for v in VERSIONS}
        out["TLSv1.3"] = out["TLSv1.3"] + self.names("TLSv1.3-SM")
        return out

    def refused(self) -> dict[str, str]:
        """Why each version (chain) stopped: the alert or behaviour that ended it."""
        return {k: (c.stop.detail or c.stop.kind) for k, c in self.chains.items() if c.stop}

    def certificate_chain(self) -> list[bytes]:
        for label in ("TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3", "TLCP", "SSLv2"):
            c = self.chains.get(label)
            if c and c.certificates:
                return c.certificates
        return []


def plan() -> list[Chain]:
    t = tables()
    return [
        Chain("TLSv1.2", WIRE_VERSION["TLSv1.2"], t.tls12),
        Chain("TLSv1.3", WIRE_VERSION["TLSv1.3"], t.tls13),
        Chain("TLSv1.3-SM", WIRE_VERSION["TLSv1.3"], t.rfc8998, shangmi=True),
        Chain("TLCP", WIRE_VERSION["TLCP"], tuple(t.tlcp)),
        Chain("TLSv1.1", WIRE_VERSION["TLSv1.1"], t.tls12),
        Chain("TLSv1.0", WIRE_VERSION["TLSv1.0"], t.tls12),
        Chain("SSLv3", WIRE_VERSION["SSLv3"], t.tls12),
        Chain("SSLv2", 0x0002, tuple(t.sslv2)),
    ]


def run_chain(chain: Chain, connect: P.Connect, *, timeout: float, sni: str, key_shares: wire.KeyShares,
              first: P.Outcome | None = None) -> Chain:
    """Probe until refusal; `first` is an outcome already obtained for this chain's first probe."""
    remaining = list(chain.candidates)
    while remaining and chain.probes < MAX_CHAIN:
        if first is not None:
            out, first = first, None
        elif chain.label == "SSLv2":
            out = P.probe_sslv2(connect, remaining, timeout=timeout)
        else:
            out = P.probe_tls(connect, chain.version, remaining, timeout=timeout, sni=sni, key_shares=key_shares,
                              shangmi=chain.shangmi, want_certificate=not chain.accepted)
        chain.probes += 1
        if out.kind != P.ACCEPTED:
            chain.stop = out
            return chain
        if out.certificates and not chain.certificates:
            chain.certificates = out.certificates
        if chain.label == "SSLv2":            # the SERVER-HELLO listed them all at once
            chain.accepted = list(out.specs)
            chain.stop = P.Outcome(P.REFUSED, "SSLv2 lists all accepted specs in one answer")
            return chain
        assert out.suite is not None
        chain.accepted.append(out.suite)
        remaining.remove(out.suite)
    chain.stop = P.Outcome(P.REFUSED, "every candidate accepted" if not remaining else "probe limit reached")
    return chain


def enumerate_server(connect: P.Connect, *, timeout: float, sni: str = "", parallel: int = 4,
                     on_first: Callable[[P.Outcome], None] | None = None) -> Enumeration:
    """All chains. The TLS 1.2 chain's first probe runs alone first so a port that is not TLS (`on_first`
    may raise CheckNotApplicable) gets one connection, not eight."""
    key_shares = wire.make_key_shares()
    chains = plan()
    head = chains[0]
    first = P.probe_tls(connect, head.version, head.candidates, timeout=timeout, sni=sni, key_shares=key_shares,
                        want_certificate=True)
    if on_first is not None:
        on_first(first)

    def go(c: Chain) -> Chain:
        return run_chain(c, connect, timeout=timeout, sni=sni, key_shares=key_shares,
                         first=first if c is head else None)

    if parallel <= 1:
        done = [go(c) for c in chains]
    else:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tls-probe") as pool:
            done = list(pool.map(go, chains))
    return Enumeration({c.label: c for c in done})
