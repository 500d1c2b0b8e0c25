"""RDP's first exchange: the X.224 Connection Request with an RDP Negotiation Request, and the server's Connection
Confirm with its RDP Negotiation Response or Failure (MS-RDPBCGR 2.2.1.1 and 2.2.1.2, inside TPKT, RFC 1006).

Shared by rdp.security (which protocols a server accepts) and tls.scan (RDP's TLS, entered like a STARTTLS
upgrade). Written here rather than taken from a library: impacket has no RDP client; rdpy is Python 2 and abandoned; aardwolf
and pyrdp are full asyncio/Twisted clients (TLS, CredSSP, graphics) that open their own sockets and go on to log
in. The request is 19 bytes plus a cookie, the answer 19 bytes; what we need is those bytes read through
`CheckContext.connect`'s socket under one deadline and a byte cap, and a parser hypothesis can drive.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# requestedProtocols / selectedProtocol flags (MS-RDPBCGR 2.2.1.1.1)
PROTOCOL_RDP = 0x00          # standard RDP security (RC4, server's proprietary certificate)
PROTOCOL_SSL = 0x01          # TLS
PROTOCOL_HYBRID = 0x02       # CredSSP (Network Level Authentication)
PROTOCOL_RDSTLS = 0x04
PROTOCOL_HYBRID_EX = 0x08    # CredSSP with the Early User Authorization Result PDU
PROTOCOL_RDSAAD = 0x10

PROTOCOL_NAMES = {PROTOCOL_RDP: "RDP", PROTOCOL_SSL: "TLS", PROTOCOL_HYBRID: "CredSSP",
                  PROTOCOL_RDSTLS: "RDSTLS", PROTOCOL_HYBRID_EX: "CredSSP-EX", PROTOCOL_RDSAAD: "RDSAAD"}
# failureCode of RDP_NEG_FAILURE (MS-RDPBCGR 2.2.1.2.2)
FAILURES = {1: "SSL_REQUIRED_BY_SERVER", 2: "SSL_NOT_ALLOWED_BY_SERVER", 3: "SSL_CERT_NOT_ON_SERVER",
            4: "INCONSISTENT_FLAGS", 5: "HYBRID_REQUIRED_BY_SERVER", 6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"}

TYPE_RDP_NEG_REQ, TYPE_RDP_NEG_RSP, TYPE_RDP_NEG_FAILURE = 0x01, 0x02, 0x03
X224_CR, X224_CC = 0xE0, 0xD0
MAX_TPKT = 1024              # a Connection Confirm is 19 bytes; anything this long is not one


class X224Error(Exception):
    """A malformed or unexpected answer (reason: protocol)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.reason = "protocol"
        self.detail = detail


@dataclass
class Confirm:
    negotiation: str          # "response" (RDP_NEG_RSP), "failure" (RDP_NEG_FAILURE), "none" (no negotiation data)
    selected: int | None      # selectedProtocol of a response
    failure: str              # failure code name of a failure ("" otherwise)
    flags: int                # the response's flags (EXTENDED_CLIENT_DATA_SUPPORTED, ...)


def names(protocols: int) -> list[str]:
    """The protocol flags set in `protocols` ([] for standard RDP security alone: use PROTOCOL_NAMES[0])."""
    return [n for bit, n in PROTOCOL_NAMES.items() if bit and protocols & bit]


def connection_request(protocols: int, cookie: bytes = b"Cookie: mstshash=tcmscan\r\n") -> bytes:
    """TPKT + X.224 Connection Request (class 0) + routing cookie + RDP_NEG_REQ asking for `protocols`."""
    neg = struct.pack("<BBHI", TYPE_RDP_NEG_REQ, 0, 8, protocols)
    x224 = struct.pack(">BBHHB", 6 + len(cookie) + len(neg), X224_CR, 0, 0, 0) + cookie + neg
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def tpkt_length(header: bytes) -> int:
    """The total length announced by a 4-byte TPKT header (version 3)."""
    version, _reserved, length = struct.unpack(">BBH", header)
    if version != 3:
        raise X224Error(f"not a TPKT header (version byte {version:#04x}): {header!r}")
    if not 11 <= length <= MAX_TPKT:
        raise X224Error(f"TPKT length {length} is not a Connection Confirm's")
    return length


def parse_connection_confirm(packet: bytes) -> Confirm:
    """A whole TPKT packet holding an X.224 Connection Confirm -> Confirm."""
    if len(packet) < 11:
        raise X224Error(f"{len(packet)} bytes are too short for a Connection Confirm")
    length = tpkt_length(packet[:4])
    if length != len(packet):
        raise X224Error(f"TPKT announces {length} bytes, {len(packet)} given")
    li, code = packet[4], packet[5]
    if code & 0xF0 != X224_CC:
        raise X224Error(f"X.224 code {code:#04x} is not a Connection Confirm")
    if li + 5 != len(packet):
        raise X224Error(f"X.224 length indicator {li} does not match the TPKT length {length}")
    neg = packet[11:]
    if not neg:
        return Confirm("none", None, "", 0)   # servers before RDP 5.2 (Windows XP SP3) send no negotiation data
    if len(neg) != 8:
        raise X224Error(f"negotiation data of {len(neg)} bytes (8 expected)")
    kind, flags, nlen, value = struct.unpack("<BBHI", neg)
    if nlen != 8:
        raise X224Error(f"negotiation length field {nlen} (8 expected)")
    if kind == TYPE_RDP_NEG_RSP:
        return Confirm("response", value, "", flags)
    if kind == TYPE_RDP_NEG_FAILURE:
        return Confirm("failure", None, FAILURES.get(value, f"unknown ({value})"), flags)
    raise X224Error(f"negotiation type {kind:#04x} is neither a response nor a failure")
