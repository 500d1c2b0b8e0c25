"""Just enough DER (ITU-T X.690) for the standard files tcmscan writes: a PKCS#8 private key encrypted with
PBES2 and scrypt (RFC 8018, RFC 7914), an SM2 public key as SubjectPublicKeyInfo (RFC 5480 with the SM2 curve)
and an SM2 signature as SEQUENCE {r, s}. `cryptography` reads the first but writes PKCS#8 only with PBKDF2 and
knows no SM2, so these few encodings are ours. Reading is strict (minimal lengths and integers, nothing left
over): a byte changed in a signature file makes it unreadable or a different signature, never the same one.
"""

from __future__ import annotations

import base64
import re

SEQUENCE, INTEGER, BIT_STRING, OCTET_STRING, OBJECT_ID = 0x30, 0x02, 0x03, 0x04, 0x06


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers")
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    body = b""
    for arc in [40 * parts[0] + parts[1], *parts[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return tlv(OBJECT_ID, body)


def read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, body, position after it) of the element at `pos`; ValueError unless it is minimal DER."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        n = first
    else:
        size = first & 0x7F
        if size == 0 or size > 4 or pos + size > len(data) or data[pos] == 0:
            raise ValueError("bad length")
        n = int.from_bytes(data[pos:pos + size], "big")
        if n < 0x80:
            raise ValueError("non-minimal length")
        pos += size
    if pos + n > len(data):
        raise ValueError("truncated")
    return tag, data[pos:pos + n], pos + n


def items(body: bytes) -> list[tuple[int, bytes]]:
    """The elements of a constructed value's body, all of it."""
    out, pos = [], 0
    while pos < len(body):
        tag, value, pos = read(body, pos)
        out.append((tag, value))
    return out


def only(data: bytes, tag: int) -> bytes:
    """The body of the one element `data` holds, which must have this tag."""
    got, body, end = read(data)
    if got != tag or end != len(data):
        raise ValueError("unexpected element")
    return body


def to_int(tag: int, body: bytes) -> int:
    """A non-negative INTEGER, minimally encoded."""
    if tag != INTEGER or not body or body[0] & 0x80 or (len(body) > 1 and body[0] == 0 and body[1] < 0x80):
        raise ValueError("not a minimal non-negative INTEGER")
    return int.from_bytes(body, "big")


def pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


def unpem(data: bytes, label: str) -> bytes | None:
    """The DER inside the first PEM block with this label, or None."""
    m = re.search(rb"-----BEGIN " + label.encode() + rb"-----([A-Za-z0-9+/=\s]*)-----END " + label.encode()
                  + rb"-----", data)
    if not m:
        return None
    try:
        return base64.b64decode(b"".join(m.group(1).split()), validate=True)
    except ValueError:
        return None
