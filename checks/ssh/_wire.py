"""A minimal SSH transport reader: identification line, binary packets (before NEWKEYS, so unencrypted),
KEXINIT. Only what `ssh.kex` needs to read a server's algorithm lists and host keys; no authentication.

Modelled on ssh-audit's `ssh_socket.py` / `ssh2_kex.py` (RFC 4253 sections 4.2, 6 and 7.1), written for
bounded time and memory: every read honours one deadline, lengths are capped, and anything malformed
raises `WireError` (turned into a CheckError by the check).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass, field

MAX_BANNER_LINE = 255          # RFC 4253 4.2: the identification line is at most 255 characters
MAX_PRE_BANNER_LINES = 20      # lines a server may send before "SSH-" (RFC 4253 4.2 allows some)
MAX_PACKET = 35000             # RFC 4253 6.1: implementations must handle 35000-byte packets
MAX_NAME_LIST = 8192           # one algorithm list; real servers send < 1 KiB
MAX_PACKETS_BEFORE_KEXINIT = 8  # IGNORE/DEBUG packets tolerated before the KEXINIT

MSG_DISCONNECT, MSG_IGNORE, MSG_UNIMPLEMENTED, MSG_DEBUG = 1, 2, 3, 4
MSG_KEXINIT = 20
CLIENT_ID = b"SSH-2.0-tcmscan_1.0"


class WireError(Exception):
    """Malformed, oversized or unexpected data from the peer (reason: protocol or timeout)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Banner:
    raw: str
    protocol: str          # "2.0", "1.99", "1.5"
    software: str
    comments: str
    pre_lines: list[str] = field(default_factory=list)


@dataclass
class KexInit:
    kex: list[str]
    host_key: list[str]
    ciphers_c2s: list[str]
    ciphers_s2c: list[str]
    macs_c2s: list[str]
    macs_s2c: list[str]
    compression_c2s: list[str]
    compression_s2c: list[str]
    languages_c2s: list[str]
    languages_s2c: list[str]
    first_kex_follows: bool


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def parse_banner_line(line: bytes) -> Banner | None:
    """'SSH-protoversion-softwareversion SP comments' (CR LF already stripped) or None if not one."""
    if not line.startswith(b"SSH-"):
        return None
    text = _printable(line)
    rest = text[4:]
    proto, sep, tail = rest.partition("-")
    if not sep or not proto:
        raise WireError("protocol", f"malformed SSH identification {text[:80]!r}")
    software, _, comments = tail.partition(" ")
    return Banner(raw=text, protocol=proto, software=software, comments=comments)


class Reader:
    """Bytes from a socket with one absolute deadline for everything (a 1-byte/s peer still ends in time)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = b""

    def _fill(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WireError("timeout", "server too slow: deadline passed while reading")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise WireError("timeout", "server too slow: deadline passed while reading") from None
        except ConnectionResetError:
            # we reached the server; resetting mid-handshake is its answer, not a reachability problem
            raise WireError("protocol", "connection closed by the server (reset)") from None
        except OSError as e:
            raise WireError("connectivity", f"read failed: {e.strerror or e}") from None
        if not chunk:
            raise WireError("protocol", "connection closed by the server")
        self.buf += chunk

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self, limit: int) -> bytes:
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise WireError("protocol", f"line longer than {limit} bytes")
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        if len(line) > limit + 1:
            raise WireError("protocol", f"line longer than {limit} bytes")
        return line.rstrip(b"\r")


def read_banner(r: Reader) -> Banner:
    pre: list[str] = []
    for _ in range(MAX_PRE_BANNER_LINES + 1):
        line = r.line(MAX_BANNER_LINE)
        b = parse_banner_line(line)
        if b is not None:
            b.pre_lines = pre
            return b
        pre.append(_printable(line)[:120])
    raise WireError("protocol", f"no SSH identification line within {MAX_PRE_BANNER_LINES} lines: {pre[:2]!r}")


def read_packet(r: Reader) -> bytes:
    """One unencrypted binary packet's payload (RFC 4253 6)."""
    length, pad = struct.unpack(">IB", r.read(5))
    if length > MAX_PACKET:
        raise WireError("protocol", f"packet length {length} exceeds {MAX_PACKET}")
    if length < pad + 2 or pad < 4:
        raise WireError("protocol", f"bad packet framing (length {length}, padding {pad})")
    body = r.read(length - 1)
    return body[: length - 1 - pad]


def packet(payload: bytes) -> bytes:
    """Frame a payload (block size 8, no MAC) for sending before NEWKEYS."""
    pad = 8 - (len(payload) + 5) % 8
    if pad < 4:
        pad += 8
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + os.urandom(pad)


class Buf:
    """Cursor over a payload; every read is bounds-checked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise WireError("protocol", f"truncated message (wanted {n} bytes at offset {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def string(self, limit: int = MAX_PACKET) -> bytes:
        n = self.u32()
        if n > limit:
            raise WireError("protocol", f"string of {n} bytes exceeds {limit}")
        return self.take(n)

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def name_list(self) -> list[str]:
        raw = self.string(MAX_NAME_LIST)
        if not raw:
            return []
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise WireError("protocol", "non-ASCII algorithm name list") from None
        return text.split(",")


def parse_kexinit(payload: bytes) -> KexInit:
    b = Buf(payload)
    if b.byte() != MSG_KEXINIT:
        raise WireError("protocol", "expected SSH_MSG_KEXINIT")
    b.take(16)   # cookie
    lists = [b.name_list() for _ in range(10)]
    follows = b.byte() != 0
    b.u32()      # reserved
    return KexInit(*lists, first_kex_follows=follows)


def s_string(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return struct.pack(">I", len(data)) + data


def s_mpint(n: int) -> bytes:
    if n == 0:
        return s_string(b"")
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)
    return s_string(raw)


def kexinit_payload(kex: list[str], host_key: list[str], ciphers: list[str], macs: list[str]) -> bytes:
    lists = [kex, host_key, ciphers, ciphers, macs, macs, ["none"], ["none"], [], []]
    return (bytes([MSG_KEXINIT]) + os.urandom(16) + b"".join(s_string(",".join(x)) for x in lists)
            + b"\x00" + b"\x00\x00\x00\x00")


def next_payload(r: Reader, want: set[int]) -> bytes:
    """The next packet whose type is in `want`, skipping IGNORE/DEBUG; DISCONNECT ends the exchange."""
    for _ in range(MAX_PACKETS_BEFORE_KEXINIT):
        p = read_packet(r)
        if not p:
            raise WireError("protocol", "empty packet")
        if p[0] in want:
            return p
        if p[0] == MSG_DISCONNECT:
            b = Buf(p[1:])
            code = b.u32()
            reason = _printable(b.string(1024))[:200]
            raise WireError("protocol", f"server disconnected (code {code}): {reason}")
        if p[0] not in (MSG_IGNORE, MSG_DEBUG, MSG_UNIMPLEMENTED):
            raise WireError("protocol", f"unexpected message type {p[0]}")
    raise WireError("protocol", f"no expected message within {MAX_PACKETS_BEFORE_KEXINIT} packets")
