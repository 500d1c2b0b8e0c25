"""Two pre-authentication IPMI LAN messages over RMCP (UDP 623), built and parsed by hand:

- Get Channel Authentication Capabilities (IPMI v2.0 spec 22.13), sent session-less in an IPMI 1.5 session
  header: the authentication types, whether null/anonymous logins are enabled, IPMI 1.5/2.0 support.
- RMCP+ Open Session Request (13.17) proposing cipher suite 0 (no authentication, no integrity, no
  confidentiality): a BMC that accepts it lets anyone who knows a user name in without a password.
- RAKP Message 1 (13.20) for a user name, after an Open Session with cipher suite 3: RAKP Message 2 carries
  an HMAC of that user's password (CVE-2013-4786: offline-crackable); we note that it came, never its bytes,
  and abort the half-open session with an error RAKP Message 3.

Why not pyghmi (the maintained Python IPMI library): its Session logs in (RAKP 1-4) as soon as it is built, keeps
a module-wide socket and a background thread, and retries on its own timer; we need two datagrams sent through
`CheckContext.allow()`, nothing after the Open Session Response, and parsers hypothesis can drive. nmap's
nselib/ipmi.lua builds the same two messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RMCP_HEADER = b"\x06\x00\xff\x07"      # RMCP version 1.0, reserved, sequence 0xff (no ACK), class IPMI
AUTH_TYPES = {0: "none", 1: "md2", 2: "md5", 4: "password", 5: "oem"}   # bits of the auth-type support byte
PAYLOAD_OPEN_SESSION_REQUEST, PAYLOAD_OPEN_SESSION_RESPONSE = 0x10, 0x11
# RMCP+ status codes (IPMI v2.0 table 13-15), those a cipher-0 probe meets
STATUS = {0x00: "accepted", 0x01: "insufficient resources", 0x02: "invalid session id",
          0x03: "invalid payload type", 0x04: "invalid authentication algorithm",
          0x05: "invalid integrity algorithm", 0x06: "no matching authentication payload",
          0x07: "no matching integrity payload", 0x09: "invalid role",
          0x0D: "unauthorized name", 0x10: "invalid confidentiality algorithm", 0x11: "no cipher suite match",
          0x12: "illegal parameter"}


class IpmiError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.reason = "protocol"
        self.detail = detail


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def auth_capabilities_request(seq: int = 1) -> bytes:
    """Get Channel Authentication Capabilities, channel 0x0E (this one), admin level, with IPMI 2.0 data."""
    header = bytes([0x20, 0x06 << 2])                        # rsAddr BMC, netFn App (even = request), LUN 0
    body = bytes([0x81, (seq & 0x3F) << 2, 0x38, 0x8E, 0x04])  # rqAddr, rqSeq, cmd, channel|v2 bit, privilege
    msg = header + bytes([_checksum(header)]) + body + bytes([_checksum(body)])
    return RMCP_HEADER + b"\x00" + struct.pack("<II", 0, 0) + bytes([len(msg)]) + msg


@dataclass
class AuthCapabilities:
    completion_code: int
    channel: int
    auth_types: list[str]
    ipmi_versions: list[str]
    anonymous_login: bool
    null_usernames: bool
    non_null_usernames: bool
    user_level_auth: bool       # user-level authentication enabled (bit 3 clear)
    per_message_auth: bool      # per-message authentication enabled (bit 4 clear)
    oem_id: int


def parse_auth_capabilities(data: bytes) -> AuthCapabilities:
    if len(data) < 14 or data[0] != 0x06 or data[3] != 0x07:
        raise IpmiError(f"not an RMCP IPMI answer: {data[:8].hex()}")
    auth_type = data[4]
    pos = 4 + 1 + 8 + (16 if auth_type not in (0, 6) else 0)
    if auth_type == 6:
        raise IpmiError("an RMCP+ answer to a session-less IPMI 1.5 request")
    if len(data) < pos + 1:
        raise IpmiError("IPMI session header cut short")
    length = data[pos]
    msg = data[pos + 1:pos + 1 + length]
    if length < 15 or len(msg) != length:
        raise IpmiError(f"IPMI message of {len(msg)} bytes (announced {length}) is too short for the answer")
    if msg[1] >> 2 != 0x07 or msg[5] != 0x38:
        raise IpmiError(f"not a Get Channel Authentication Capabilities answer (netFn {msg[1] >> 2:#x}, "
                        f"cmd {msg[5]:#x})")
    code = msg[6]
    if code != 0:
        return AuthCapabilities(code, 0, [], [], False, False, False, False, False, 0)
    support, status, ext = msg[8], msg[9], msg[10]
    versions = (["1.5"] if not support & 0x80 or ext & 0x01 else []) + (["2.0"] if support & 0x80 and ext & 0x02
                                                                          else [])
    return AuthCapabilities(
        completion_code=0, channel=msg[7], auth_types=[n for b, n in AUTH_TYPES.items() if support & (1 << b)],
        ipmi_versions=versions, anonymous_login=bool(status & 0x01), null_usernames=bool(status & 0x02),
        non_null_usernames=bool(status & 0x04), user_level_auth=not status & 0x08,
        per_message_auth=not status & 0x10, oem_id=int.from_bytes(msg[11:14], "little"))


PAYLOAD_RAKP1, PAYLOAD_RAKP2, PAYLOAD_RAKP3 = 0x12, 0x13, 0x14
CIPHER_ZERO = (0, 0, 0)            # RAKP-none, no integrity, no confidentiality
CIPHER_THREE = (1, 1, 1)           # RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128: what every IPMI 2.0 BMC offers


def _rmcp_plus(payload_type: int, payload: bytes) -> bytes:
    return RMCP_HEADER + struct.pack("<BBIIH", 0x06, payload_type, 0, 0, len(payload)) + payload


def open_session_request(console_session_id: int, tag: int = 0, cipher: tuple[int, int, int] = CIPHER_ZERO
                         ) -> bytes:
    """RMCP+ Open Session Request proposing one cipher suite (default 0), at the highest privilege the user has."""
    payload = struct.pack("<BBHI", tag, 0, 0, console_session_id)
    for kind, algorithm in enumerate(cipher):     # authentication, integrity, confidentiality payloads
        payload += struct.pack("<BHBB3s", kind, 0, 8, algorithm, b"\x00\x00\x00")
    return _rmcp_plus(PAYLOAD_OPEN_SESSION_REQUEST, payload)


def rakp1(managed_session_id: int, console_random: bytes, user: str, tag: int = 0) -> bytes:
    """RAKP Message 1 (13.20): the user name, admin role with name-only lookup (0x14)."""
    name = user.encode("latin-1", "replace")[:16]
    payload = struct.pack("<BBHI", tag, 0, 0, managed_session_id) + console_random[:16].ljust(16, b"\0")
    payload += struct.pack("<BHB", 0x14, 0, len(name)) + name
    return _rmcp_plus(PAYLOAD_RAKP1, payload)


def rakp3_abort(managed_session_id: int, tag: int = 0) -> bytes:
    """RAKP Message 3 with an error status (13.22: "unauthorized name"): asks the BMC to drop the half-open
    session now rather than at its timeout, so our probes never hold its few session slots."""
    return _rmcp_plus(PAYLOAD_RAKP3, struct.pack("<BBHI", tag, 0x0D, 0, managed_session_id))


def _rmcp_plus_payload(data: bytes, want: int, what: str) -> bytes:
    if len(data) < 16 or data[0] != 0x06 or data[3] != 0x07:
        raise IpmiError(f"not an RMCP answer: {data[:8].hex()}")
    if data[4] != 0x06:
        raise IpmiError(f"authentication type {data[4]:#x}: not RMCP+ (the BMC speaks IPMI 1.5 only)")
    if data[5] & 0x3F != want:
        raise IpmiError(f"payload type {data[5] & 0x3F:#x} is not {what}")
    (length,) = struct.unpack("<H", data[14:16])
    payload = data[16:16 + length]
    if length < 8 or len(payload) != length:
        raise IpmiError(f"{what} of {len(payload)} bytes (announced {length})")
    return payload


def parse_open_session(data: bytes, console_session_id: int) -> tuple[str, int]:
    """(status, managed system session id) of an Open Session Response to our request."""
    payload = _rmcp_plus_payload(data, PAYLOAD_OPEN_SESSION_RESPONSE, "an Open Session Response")
    status = payload[1]
    if status != 0:
        return STATUS.get(status, f"status {status:#04x}"), 0
    if len(payload) < 12 or struct.unpack("<I", payload[4:8])[0] != console_session_id:
        raise IpmiError("an Open Session Response for another session")
    return "accepted", struct.unpack("<I", payload[8:12])[0]


def parse_rakp2(data: bytes, console_session_id: int) -> tuple[str, int]:
    """(status, length of the key exchange authentication code) of RAKP Message 2: a code (20 bytes with
    HMAC-SHA1) is the HMAC of the user's password over both randoms — offline-crackable (CVE-2013-4786). Its
    bytes are never kept."""
    payload = _rmcp_plus_payload(data, PAYLOAD_RAKP2, "a RAKP Message 2")
    status = payload[1]
    if status != 0:
        return STATUS.get(status, f"status {status:#04x}"), 0
    if struct.unpack("<I", payload[4:8])[0] != console_session_id:
        raise IpmiError("a RAKP Message 2 for another session")
    return "accepted", max(0, len(payload) - 40)


def parse_open_session_response(data: bytes, console_session_id: int) -> str:
    """The status of an Open Session Response to our request ("accepted" for cipher suite 0 taken)."""
    return parse_open_session(data, console_session_id)[0]
