"""TLS/SSL wire format: our own ClientHello encoder and a parser for the few server messages we read.

Why our own and not scapy's TLS layer or the local OpenSSL: the probe must offer code points the local
OpenSSL no longer implements (SSLv2, EXPORT, RC4, TLCP, RFC 8998) and cost one round trip; we only need
to *encode* a ClientHello and *read* ServerHello, Alert and Certificate, so a few hundred lines of struct
packing are faster (no layer objects) and keep every byte under our control. The layout follows RFC 5246
(7.4), RFC 8446 (4.1.2-4.2), the SSL 2.0 draft (client-hello / server-hello) and GB/T 38636-2020 (TLCP
reuses the TLS 1.2 layout with version 0x0101).

Everything here is pure (bytes in, values out); `ProtocolError` is the only exception the parsers raise on
any input (tested with hypothesis).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field

# Record content types
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
# Handshake types
CLIENT_HELLO, SERVER_HELLO, CERTIFICATE, SERVER_KEY_EXCHANGE, SERVER_HELLO_DONE = 1, 2, 11, 12, 14
# Extensions
EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS, EXT_EC_POINT_FORMATS, EXT_SIGNATURE_ALGORITHMS = 0, 10, 11, 13
EXT_EXTENDED_MASTER_SECRET, EXT_SESSION_TICKET, EXT_SUPPORTED_VERSIONS = 23, 35, 43
EXT_PSK_MODES, EXT_KEY_SHARE, EXT_RENEGOTIATION_INFO = 45, 51, 0xFF01

MAX_RECORD = (1 << 14) + 2048          # RFC 5246 6.2.3: ciphertext may exceed 2^14 by 2048
# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest (it still names the chosen suite)
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

# Groups: secp256r1..secp521r1 and the older named curves (RFC 4492, all of them so any ECDHE server finds one),
# x25519/x448 (RFC 8422), ffdhe2048..8192 (RFC 7919). curveSM2 (RFC 8998) only in the ShangMi probe.
X25519, SECP256R1, CURVE_SM2 = 0x001D, 0x0017, 0x0029
GROUPS_LEGACY = (0x001D, 0x0017, 0x0018, 0x0019, 0x001E, *range(1, 23), 0x001A, 0x001B, 0x001C,
                 0x0100, 0x0101, 0x0102, 0x0103, 0x0104)
GROUPS_TLS13 = (X25519, SECP256R1, 0x0018, 0x0019, 0x001E, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104)
# Signature schemes (RFC 8446 4.2.3 + the TLS 1.2 hash/signature pairs incl. MD5/SHA-1/SHA-224 and DSA,
# so a server with an old certificate is not refused by us).
SIGALGS = (0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080A, 0x080B,
           0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0203, 0x0201, 0x0202, 0x0402, 0x0502, 0x0602,
           0x0101, 0x0102, 0x0103)
SM2SIG_SM3 = 0x0708
# The SM2 curve's base point G (GB/T 32918.5): a valid curve point, so usable as a throwaway key share in a
# probe that never completes the handshake (cryptography has no SM2 key generation).
SM2_G = bytes.fromhex(
    "04" "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
    "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")

# Alert descriptions worth a name in reports (RFC 8446 6)
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
          40: "handshake_failure", 42: "bad_certificate", 47: "illegal_parameter", 50: "decode_error",
          51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name", 120: "no_application_protocol"}


class ProtocolError(ValueError):
    """The peer's bytes are not the TLS/SSL we asked for (garbage, truncated, oversized, contradictory)."""


class NotTLS(ProtocolError):
    """The bytes are not TLS records at all (another protocol answered)."""


# ---------------------------------------------------------------- encoding

def _u8(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def _u16(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _u24(b: bytes) -> bytes:
    return len(b).to_bytes(3, "big") + b


def _codes(codes: tuple[int, ...] | list[int]) -> bytes:
    return b"".join(struct.pack("!H", c) for c in codes)


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!H", etype) + _u16(body)


def record(content_type: int, version: int, payload: bytes) -> bytes:
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


@dataclass(frozen=True)
class KeyShares:
    """Public key shares offered in TLS 1.3 probes: group -> encoded public key (throwaway keys)."""

    shares: tuple[tuple[int, bytes], ...]


def make_key_shares() -> KeyShares:
    """x25519 and secp256r1 throwaway public keys (cryptography); a probe never uses the private half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    xpub = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ppub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return KeyShares(((X25519, xpub), (SECP256R1, ppub)))


def client_hello(version: int, suites: list[int] | tuple[int, ...], *, sni: str = "",
                 key_shares: KeyShares | None = None, shangmi: bool = False) -> bytes:
    """One ClientHello record offering `suites` at `version` (0x0300..0x0304, or 0x0101 for TLCP).

    TLS 1.3 (0x0304) is offered the RFC 8446 way: legacy_version 0x0303 plus supported_versions and
    key_share; `shangmi` switches groups/key share/signature schemes to curveSM2/sm2sig_sm3 (RFC 8998 3).
    SSLv3 and TLCP hellos carry no extensions (SSL 3.0 servers may reject them; TLCP stacks do not need them).
    """
    tls13 = version == 0x0304
    legacy = 0x0303 if tls13 else version
    exts = b""
    if version >= 0x0301:
        if sni:
            name = sni.encode("idna")
            exts += _ext(EXT_SERVER_NAME, _u16(b"\x00" + _u16(name)))
        if tls13:
            groups = (CURVE_SM2,) if shangmi else GROUPS_TLS13
            sigalgs = (SM2SIG_SM3, *SIGALGS) if shangmi else SIGALGS
            exts += _ext(EXT_SUPPORTED_VERSIONS, _u8(struct.pack("!H", 0x0304)))
            exts += _ext(EXT_SUPPORTED_GROUPS, _u16(_codes(groups)))
            exts += _ext(EXT_SIGNATURE_ALGORITHMS, _u16(_codes(sigalgs)))
            shares = ((CURVE_SM2, SM2_G),) if shangmi else (key_shares or make_key_shares()).shares
            exts += _ext(EXT_KEY_SHARE, _u16(b"".join(struct.pack("!H", g) + _u16(k) for g, k in shares)))
            exts += _ext(EXT_PSK_MODES, _u8(b"\x01"))
        else:
            exts += _ext(EXT_SUPPORTED_GROUPS, _u16(_codes(GROUPS_LEGACY)))
            exts += _ext(EXT_EC_POINT_FORMATS, _u8(b"\x00\x01\x02"))
            exts += _ext(EXT_SIGNATURE_ALGORITHMS, _u16(_codes(SIGALGS)))
            exts += _ext(EXT_EXTENDED_MASTER_SECRET, b"")
            exts += _ext(EXT_SESSION_TICKET, b"")
        exts += _ext(EXT_RENEGOTIATION_INFO, b"\x00")
    body = (struct.pack("!H", legacy) + os.urandom(32) + _u8(os.urandom(32) if tls13 else b"")
            + _u16(_codes(suites)) + b"\x01\x00" + (_u16(exts) if exts else b""))
    hs = bytes([CLIENT_HELLO]) + _u24(body)
    # Record version: 0x0301 for TLS (RFC 8446 5.1 says so for 1.3; old servers choke on higher), SSL 3.0 and
    # TLCP use their own.
    rec_version = version if version in (0x0300, 0x0101) else 0x0301
    return record(HANDSHAKE, rec_version, hs)


def sslv2_client_hello(specs: list[int] | tuple[int, ...]) -> bytes:
    """SSL 2.0 CLIENT-HELLO (2-byte header) offering 3-byte CIPHER-SPECs."""
    challenge = os.urandom(16)
    spec_bytes = b"".join(s.to_bytes(3, "big") for s in specs)
    msg = (b"\x01" + struct.pack("!HHHH", 0x0002, len(spec_bytes), 0, len(challenge)) + spec_bytes + challenge)
    return struct.pack("!H", 0x8000 | len(msg)) + msg


# ---------------------------------------------------------------- parsing

@dataclass
class ServerHello:
    version: int              # negotiated: supported_versions when present (TLS 1.3), else legacy version
    legacy_version: int
    cipher_suite: int
    compression: int
    hello_retry: bool = False
    extensions: dict[int, bytes] = field(default_factory=dict)


def _need(data: bytes, pos: int, n: int) -> None:
    if n < 0 or pos + n > len(data):
        raise ProtocolError("truncated message")


def parse_record_header(hdr: bytes) -> tuple[int, int, int]:
    """(content type, version, length) of a TLS/TLCP record header; ProtocolError for anything else."""
    if len(hdr) != 5:
        raise ProtocolError("truncated record header")
    ctype, version, length = struct.unpack("!BHH", hdr)
    if ctype not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT):
        raise NotTLS(f"not a TLS record (content type {ctype})")
    if not (0x0300 <= version <= 0x0304 or version == 0x0101):
        raise NotTLS(f"not a TLS record (version 0x{version:04x})")
    if length > MAX_RECORD:
        raise ProtocolError(f"oversized record ({length} bytes)")
    return ctype, version, length


def parse_alert(payload: bytes) -> tuple[int, int]:
    if len(payload) < 2:
        raise ProtocolError("truncated alert")
    return payload[0], payload[1]


def alert_name(description: int) -> str:
    return ALERTS.get(description, f"alert_{description}")


def split_handshakes(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Complete handshake messages in `buf` and the incomplete tail (messages may span records)."""
    out = []
    pos = 0
    while len(buf) - pos >= 4:
        mtype = buf[pos]
        length = int.from_bytes(buf[pos + 1:pos + 4], "big")
        if pos + 4 + length > len(buf):
            break
        out.append((mtype, buf[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return out, buf[pos:]


def parse_server_hello(body: bytes) -> ServerHello:
    _need(body, 0, 35)
    legacy, = struct.unpack_from("!H", body, 0)
    random = body[2:34]
    pos = 34
    sid_len = body[pos]
    if sid_len > 32:
        raise ProtocolError("session id longer than 32 bytes")
    pos += 1 + sid_len
    _need(body, pos, 3)
    suite, = struct.unpack_from("!H", body, pos)
    compression = body[pos + 2]
    pos += 3
    exts: dict[int, bytes] = {}
    if pos < len(body):
        _need(body, pos, 2)
        total, = struct.unpack_from("!H", body, pos)
        pos += 2
        _need(body, pos, total)
        end = pos + total
        while pos < end:
            _need(body, pos, 4)
            etype, elen = struct.unpack_from("!HH", body, pos)
            pos += 4
            if pos + elen > end:
                raise ProtocolError("extension overruns the extensions block")
            if etype in exts:
                raise ProtocolError(f"duplicate extension {etype}")
            exts[etype] = body[pos:pos + elen]
            pos += elen
    version = legacy
    sv = exts.get(EXT_SUPPORTED_VERSIONS)
    if sv is not None:
        if len(sv) != 2:
            raise ProtocolError("malformed supported_versions")
        version, = struct.unpack("!H", sv)
    return ServerHello(version=version, legacy_version=legacy, cipher_suite=suite, compression=compression,
                       hello_retry=random == HRR_RANDOM, extensions=exts)


def parse_certificate_list(body: bytes, tls13: bool = False) -> list[bytes]:
    """DER certificates of a Certificate message (TLS 1.2 layout; TLS 1.3's request context and per-entry
    extensions when `tls13`)."""
    pos = 0
    if tls13:
        _need(body, 0, 1)
        pos = 1 + body[0]
    _need(body, pos, 3)
    total = int.from_bytes(body[pos:pos + 3], "big")
    pos += 3
    _need(body, pos, total)
    end = pos + total
    certs = []
    while pos < end:
        _need(body, pos, 3)
        clen = int.from_bytes(body[pos:pos + 3], "big")
        pos += 3
        if clen == 0 or pos + clen > end:
            raise ProtocolError("malformed certificate entry")
        certs.append(body[pos:pos + clen])
        pos += clen
        if tls13:
            _need(body, pos, 2)
            pos += 2 + struct.unpack_from("!H", body, pos)[0]
            if pos > end:
                raise ProtocolError("malformed certificate extensions")
    return certs


@dataclass
class SSLv2ServerHello:
    version: int
    cipher_specs: list[int]
    certificate: bytes


def parse_sslv2_server_hello(msg: bytes) -> SSLv2ServerHello:
    """SSL 2.0 SERVER-HELLO body (after the record header): the specs listed are those the server accepts
    among the ones offered."""
    _need(msg, 0, 11)
    if msg[0] != 4:
        raise ProtocolError(f"not an SSLv2 SERVER-HELLO (message type {msg[0]})")
    version, cert_len, specs_len, conn_len = struct.unpack_from("!HHHH", msg, 3)
    if specs_len % 3:
        raise ProtocolError("cipher specs length not a multiple of 3")
    pos = 11
    _need(msg, pos, cert_len + specs_len + conn_len)
    cert = msg[pos:pos + cert_len]
    pos += cert_len
    specs = [int.from_bytes(msg[pos + i:pos + i + 3], "big") for i in range(0, specs_len, 3)]
    return SSLv2ServerHello(version=version, cipher_specs=specs, certificate=cert)


def sslv2_record_length(header: bytes) -> tuple[int, int]:
    """(header length, body length) of an SSL 2.0 record whose first two bytes are `header`."""
    if len(header) < 2:
        raise ProtocolError("truncated SSLv2 header")
    if header[0] & 0x80:
        return 2, ((header[0] & 0x7F) << 8) | header[1]
    return 3, ((header[0] & 0x3F) << 8) | header[1]
