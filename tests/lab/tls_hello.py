"""Build raw ClientHello records (TLS 1.3 with RFC 8998 suites, or TLCP) for the tests."""

from __future__ import annotations

import os
import struct


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def client_hello(record_version: int, suites: list[int], tls13: bool) -> bytes:
    exts = b""
    if tls13:
        exts += _ext(0x002B, bytes([2]) + struct.pack("!H", 0x0304))             # supported_versions
        exts += _ext(0x000A, struct.pack("!HH", 2, 0x0029))                      # groups: curveSM2
        exts += _ext(0x000D, struct.pack("!HH", 2, 0x0708))                      # sig algs: sm2sig_sm3
        share = struct.pack("!HH", 0x0029, 65) + b"\x04" + os.urandom(64)
        exts += _ext(0x0033, struct.pack("!H", len(share)) + share)              # key_share
    version = 0x0101 if record_version == 0x0101 else 0x0303
    cs = b"".join(struct.pack("!H", s) for s in suites)
    body = (struct.pack("!H", version) + os.urandom(32) + b"\x00" + struct.pack("!H", len(cs)) + cs
            + b"\x01\x00" + (struct.pack("!H", len(exts)) + exts if exts else b""))
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, record_version, len(hs)) + hs
