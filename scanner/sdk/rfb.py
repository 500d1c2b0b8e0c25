"""The opening of an RFB (VNC) session, up to the security types, and nothing after: RFC 6143 7.1.1 (ProtocolVersion),
7.1.2 (Security), 7.1.3 (the failure reason); VeNCrypt's version and sub-type list (rfbproto "VeNCrypt").

Our own ~80 lines rather than a VNC library: vncdotool is Twisted, asyncvnc asyncio, both want to log in and draw
a framebuffer, neither reads through `CheckContext.connect`'s socket with one deadline and a byte cap. What we
read is 12 bytes, a count and at most 255 type bytes (or one u32 for RFB 3.3), a reason string we cap, and for
VeNCrypt 2+1+1+4n bytes. nmap's nselib/vnc.lua reads the same fields the same way.

`handshake(read, send)` talks through two callables so the parser can be driven by hypothesis without a socket:
`read(n)` returns exactly n bytes or raises; every malformed answer raises `RfbError`. Shared by vnc.security
(which never authenticates) and creds.default (`vnc_auth`: classic VNC authentication, RFC 6143 7.2.2, one
password per connection).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

MAX_REASON = 1024        # a failure reason is a human sentence; longer is cut, not read (we stop after it)
VENCRYPT = 19
VNC_AUTH = 2
_VERSION = re.compile(rb"RFB (\d{3})\.(\d{3})\n")


class RfbError(Exception):
    """A malformed, refused or truncated answer (reason: protocol or timeout)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Hello:
    banner: str                      # "RFB 003.008"
    version: str                     # the server's, "3.8" ("3.889" for Apple, "4.1" for some RealVNC)
    client_version: str              # the one we answered with: 3.3, 3.7 or 3.8
    types: list[int]                 # offered (3.7+) or chosen by the server (3.3); [] when refused
    server_chose: bool               # RFB 3.3: the server picks one type, the client cannot choose
    refused: str = ""                # the reason sent with an empty list (e.g. "Too many security failures")
    vencrypt_version: str = ""       # "0.2" when the VeNCrypt sub-types were read
    vencrypt_subtypes: list[int] = field(default_factory=list)
    vencrypt_error: str = ""         # why the sub-types could not be read (the types stay valid)


def parse_version(line: bytes) -> tuple[int, int]:
    """The 12-byte ProtocolVersion "RFB xxx.yyy\\n" -> (major, minor)."""
    m = _VERSION.fullmatch(line)
    if not m:
        raise RfbError("protocol", f"not an RFB ProtocolVersion: {line[:12]!r}")
    return int(m.group(1)), int(m.group(2))


def client_version(major: int, minor: int) -> tuple[int, int]:
    """RFC 6143 7.1.1: answer with the highest version both speak; 3.3, 3.7, 3.8 are the published ones, and any
    other 3.x below 3.7 (3.4, 3.6 of UltraVNC and others) is to be treated as 3.3."""
    if (major, minor) >= (3, 8):
        return 3, 8
    if (major, minor) >= (3, 7):
        return 3, 7
    if major == 3:
        return 3, 3
    raise RfbError("protocol", f"RFB version {major}.{minor} is older than 3.3")


def _reason(read: Callable[[int], bytes]) -> str:
    (n,) = struct.unpack(">I", read(4))
    text = read(min(n, MAX_REASON))
    return text.decode("utf-8", errors="replace")[:200]


def handshake(read: Callable[[int], bytes], send: Callable[[bytes], object], *, vencrypt: bool = True) -> Hello:
    """Read the server's version and security types; with `vencrypt`, when type 19 is offered, choose it and read
    its sub-types. Never authenticates: the caller closes the connection after this."""
    raw = read(12)
    major, minor = parse_version(raw)
    cmaj, cmin = client_version(major, minor)
    send(b"RFB %03d.%03d\n" % (cmaj, cmin))
    hello = Hello(banner=raw[:11].decode("ascii"), version=f"{major}.{minor}", client_version=f"{cmaj}.{cmin}",
                  types=[], server_chose=(cmaj, cmin) == (3, 3))
    if hello.server_chose:
        (chosen,) = struct.unpack(">I", read(4))
        if chosen == 0:
            hello.refused = _reason(read)
        else:
            hello.types = [chosen]
        return hello
    (count,) = read(1)
    if count == 0:
        hello.refused = _reason(read)
        return hello
    hello.types = list(read(count))
    if vencrypt and VENCRYPT in hello.types:
        send(bytes([VENCRYPT]))
        _vencrypt(read, send, hello)
    return hello


def _vencrypt(read: Callable[[int], bytes], send: Callable[[bytes], object], hello: Hello) -> None:
    """VeNCrypt: server version (2 bytes), our version back, its ack (0 = accepted), count, count u32 sub-types."""
    vmaj, vmin = read(2)
    if (vmaj, vmin) != (0, 2):   # 0.1 used 1-byte sub-types and is obsolete; nmap reads 0.2 only, as do we
        hello.vencrypt_error = f"VeNCrypt version {vmaj}.{vmin} not read (0.2 only)"
        return
    send(b"\x00\x02")
    (ack,) = read(1)
    if ack != 0:
        hello.vencrypt_error = "the server refused VeNCrypt version 0.2"
        return
    (count,) = read(1)
    hello.vencrypt_version = "0.2"
    hello.vencrypt_subtypes = list(struct.unpack(f">{count}I", read(4 * count)))


def vnc_response(password: str, challenge: bytes) -> bytes:
    """RFC 6143 7.2.2: the 16-byte challenge DES-encrypted (ECB) with the password, cut or NUL-padded to 8 bytes,
    each key byte's bits in reverse order (what every VNC implementation does). 3DES with the key three times
    is single DES, the only way cryptography still offers it."""
    key = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in key)
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return enc.update(challenge) + enc.finalize()


def vnc_auth(read: Callable[[int], bytes], send: Callable[[bytes], object], hello: Hello, password: str
             ) -> tuple[bool, str]:
    """After `handshake(..., vencrypt=False)` offered type 2: choose it (RFB 3.7+), answer the challenge, read the
    SecurityResult. (accepted, detail); the caller hangs up either way (no ClientInit is sent)."""
    if VNC_AUTH not in hello.types:
        raise RfbError("protocol", f"classic VNC authentication not offered (types {hello.types})")
    if not hello.server_chose:
        send(bytes([VNC_AUTH]))
    send(vnc_response(password, read(16)))
    (result,) = struct.unpack(">I", read(4))
    if result == 0:
        return True, "SecurityResult OK"
    reason = _reason(read) if hello.client_version == "3.8" else ""
    return False, f"SecurityResult failed{': ' + reason if reason else ''}"[:120]
