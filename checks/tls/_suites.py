"""Cipher-suite knowledge for tls.scan, read from baselines/knowledge/tls_cipher_suites.yaml and tls_shangmi.yaml.

The tables are facts about the world (names, code points, flags); this module only indexes them for the
ClientHello encoder (which code points to offer per version) and the parser (code point -> IANA name).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from scanner.sdk import knowledge

VERSIONS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
WIRE_VERSION = {"SSLv3": 0x0300, "TLSv1.0": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304,
                "TLCP": 0x0101}
# Signalling values, never cipher suites: offering FALLBACK_SCSV below the server's best version makes a
# correct server refuse everything (RFC 7507), so neither is ever a candidate.
SIGNALLING = {0x00FF, 0x5600}


@dataclass(frozen=True)
class SuiteTables:
    names: dict[int, str]          # TLS code point (2 bytes) -> name, SSLv3..TLS 1.3 and RFC 8998
    tls12: tuple[int, ...]         # candidates for SSLv3 .. TLS 1.2 probes
    tls13: tuple[int, ...]         # TLS 1.3 suites (RFC 8446)
    rfc8998: tuple[int, ...]       # TLS 1.3 ShangMi suites
    sslv2: dict[int, str]          # SSL 2.0 CIPHER-SPEC (3 bytes) -> name
    tlcp: dict[int, str]           # TLCP code point -> name
    flags: dict[str, tuple[str, ...]]  # name -> flags (weak, rc4, ...)


@functools.cache
def tables() -> SuiteTables:
    k = knowledge()
    cs = k["tls_cipher_suites"]
    sm = k["tls_shangmi"]
    names: dict[int, str] = {}
    flags: dict[str, tuple[str, ...]] = {}
    tls12: list[int] = []
    tls13: list[int] = []
    for name, e in cs["suites"].items():
        codes = [int(e["code"]), *(int(c) for c in e.get("also", []))]
        flags[name] = tuple(e.get("flags", []))
        for code in codes:
            names[code] = name
            if code in SIGNALLING or "sm" in flags[name]:
                continue
            (tls13 if e.get("min") == "TLSv1.3" else tls12).append(code)
    rfc8998 = tuple(int(c) for c in sm["rfc8998"]["suites"].values())
    for name, code in sm["rfc8998"]["suites"].items():
        names[int(code)] = name
    sslv2 = {int(e["code"]): name for name, e in cs["sslv2"].items()}
    for name, e in cs["sslv2"].items():
        flags[name] = tuple(e.get("flags", []))
    tlcp = {int(code): name for name, code in sm["tlcp"]["suites"].items()}
    return SuiteTables(names=names, tls12=tuple(tls12), tls13=tuple(tls13), rfc8998=rfc8998, sslv2=sslv2,
                       tlcp=tlcp, flags=flags)


def name_of(code: int) -> str:
    """IANA name of a TLS code point; unknown ones (a server choosing something we did not offer) by number."""
    return tables().names.get(code, f"UNKNOWN_0x{code:04X}")
