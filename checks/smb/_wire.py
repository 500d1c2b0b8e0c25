"""SMB negotiation, one dialect per connection, the way nmap's smb-protocols script asks: which dialects does
the server accept, does it require signing, and what time does it say it is.

Requests are built with impacket's own structures (smb.NewSMBPacket, smb3structs.SMB2Packet/SMB2Negotiate), so
they are what impacket's clients send. Why not impacket's SMB/SMB3 classes themselves: they negotiate inside
their constructor, read whatever length the NetBIOS header announces (up to 16 MiB) with a per-read timeout that
every byte restarts, and SMB3 handed an existing socket numbers its first message 1 (it assumes an SMB1
negotiate went before), which Samba and Windows answer by closing the connection. The answers are parsed here,
fixed-offset fields with every length checked, into `NegotiateAnswer`; anything malformed raises `WireError`.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from impacket import smb
from impacket.smb3structs import (
    SMB2_DIALECT_002,
    SMB2_DIALECT_21,
    SMB2_DIALECT_30,
    SMB2_DIALECT_302,
    SMB2_DIALECT_311,
    SMB2_ENCRYPTION_CAPABILITIES,
    SMB2_NEGOTIATE,
    SMB2_NEGOTIATE_SIGNING_ENABLED,
    SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
    SMB2EncryptionCapabilities,
    SMB2Negotiate,
    SMB2NegotiateContext,
    SMB2Packet,
    SMB2PreAuthIntegrityCapabilities,
    SMB311ContextData,
)

SMB1_DIALECT = "NT LM 0.12"
# name in our facts (nmap prints 202, 210, 300, 302, 311) -> dialect revision code
SMB2_DIALECTS = {"2.0.2": SMB2_DIALECT_002, "2.1": SMB2_DIALECT_21, "3.0": SMB2_DIALECT_30,
                 "3.0.2": SMB2_DIALECT_302, "3.1.1": SMB2_DIALECT_311}
DIALECT_NAMES = {code: name for name, code in SMB2_DIALECTS.items()}
MAX_MESSAGE = 65536          # a negotiate answer is a few hundred bytes (its security blob < 1 KiB)
STATUS_SUCCESS = 0
SMB1_SIGNING_ENABLED, SMB1_SIGNING_REQUIRED = 0x04, 0x08
SMB2_SIGNING_REQUIRED = 0x02
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class WireError(Exception):
    """Malformed, oversized or missing data from the peer (reason "protocol" or "timeout")."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class NegotiateAnswer:
    accepted: bool               # the server chose the dialect we offered
    dialect: str                 # what it chose ("" when it refused)
    signing_enabled: bool | None
    signing_required: bool | None
    server_time: datetime | None  # its clock (SMB2 SystemTime, SMB1 SystemTime), UTC
    status: int = 0               # SMB2 status of a refusal (e.g. 0xC00000BB STATUS_NOT_SUPPORTED)


# -- requests ---------------------------------------------------------------------------------------------------
def smb1_negotiate() -> bytes:
    """SMB_COM_NEGOTIATE offering only NT LM 0.12, with extended security (as Windows clients send it)."""
    p = smb.NewSMBPacket()
    p["Flags1"] = smb.SMB.FLAGS1_PATHCASELESS | smb.SMB.FLAGS1_CANONICALIZED_PATHS
    p["Flags2"] = (smb.SMB.FLAGS2_EXTENDED_SECURITY | smb.SMB.FLAGS2_NT_STATUS | smb.SMB.FLAGS2_LONG_NAMES
                   | smb.SMB.FLAGS2_UNICODE)
    cmd = smb.SMBCommand(smb.SMB.SMB_COM_NEGOTIATE)
    cmd["Data"] = b"\x02" + SMB1_DIALECT.encode() + b"\x00"
    p.addCommand(cmd)
    return p.getData()


def smb2_negotiate(dialect: int) -> bytes:
    """SMB2 NEGOTIATE offering one dialect, message id 0 (the first message of a connection)."""
    neg = SMB2Negotiate()
    neg["SecurityMode"] = SMB2_NEGOTIATE_SIGNING_ENABLED
    neg["Capabilities"] = 0
    neg["ClientGuid"] = os.urandom(16)
    neg["Dialects"] = [dialect]
    neg["DialectCount"] = 1
    if dialect == SMB2_DIALECT_311:
        # 3.1.1 requires a preauth-integrity context (SHA-512); an encryption context as impacket sends it
        ctx = SMB311ContextData()
        ctx["NegotiateContextOffset"] = 64 + 36 + 2 + 2     # header, fixed part, one dialect, padding to 8
        ctx["NegotiateContextCount"] = 2
        pre = SMB2PreAuthIntegrityCapabilities()
        pre["HashAlgorithmCount"] = 1
        pre["SaltLength"] = 32
        pre["HashAlgorithms"] = b"\x01\x00"
        pre["Salt"] = os.urandom(32)
        c1 = SMB2NegotiateContext()
        c1["ContextType"] = SMB2_PREAUTH_INTEGRITY_CAPABILITIES
        c1["Data"] = pre.getData()
        c1["DataLength"] = len(c1["Data"])
        enc = SMB2EncryptionCapabilities()
        enc["CipherCount"] = 1
        enc["Ciphers"] = b"\x01\x00"                       # AES-128-CCM
        c2 = SMB2NegotiateContext()
        c2["ContextType"] = SMB2_ENCRYPTION_CAPABILITIES
        c2["Data"] = enc.getData()
        c2["DataLength"] = len(c2["Data"])
        first = c1.getData()
        neg["ClientStartTime"] = ctx.getData()
        neg["Padding"] = b"\x00\x00"
        neg["NegotiateContextList"] = first + b"\x00" * ((8 - len(first) % 8) % 8) + c2.getData()
    else:
        neg["ClientStartTime"] = b"\x00" * 8
    p = SMB2Packet()
    p["Command"] = SMB2_NEGOTIATE
    p["CreditRequestResponse"] = 1
    p["MessageID"] = 0
    p["Data"] = neg
    return p.getData()


def frame(message: bytes) -> bytes:
    """Direct-TCP transport (port 445): a zero byte and a 24-bit length before each message."""
    return struct.pack(">I", len(message)) + message


# -- answers ----------------------------------------------------------------------------------------------------
def filetime(value: int) -> datetime | None:
    """A Windows FILETIME (100 ns since 1601) as UTC; None for 0 or a value no calendar holds."""
    if value <= 0:
        return None
    try:
        t = _FILETIME_EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        return None
    return t if 1980 <= t.year <= 9000 else None


def read_message(sock: socket.socket, deadline: float) -> bytes:
    """One message from the direct-TCP transport, complete by `deadline` (however slowly the peer sends), at
    most MAX_MESSAGE bytes. TimeoutError from the socket becomes WireError("timeout")."""
    head = _read_exact(sock, 4, deadline)
    if head[0] != 0:
        raise WireError("protocol", f"not an SMB direct-TCP frame (first byte 0x{head[0]:02x})")
    length = int.from_bytes(head[1:], "big")
    if length > MAX_MESSAGE:
        raise WireError("protocol", f"message of {length} bytes announced (limit {MAX_MESSAGE})")
    return _read_exact(sock, length, deadline)


def _read_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WireError("timeout", "server too slow: no complete answer in time")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(out), 65536))
        except TimeoutError:
            raise WireError("timeout", "server too slow: no complete answer in time") from None
        if not chunk:
            raise WireError("protocol", "connection closed by the server" + (" mid-message" if out else ""))
        out += chunk
    return out


def parse_negotiate(message: bytes, offered: str) -> NegotiateAnswer:
    """An SMB1 or SMB2 NEGOTIATE answer to our offer of `offered` (SMB1_DIALECT or a SMB2_DIALECTS key)."""
    if message[:4] == b"\xfeSMB":
        return _parse_smb2(message, offered)
    if message[:4] == b"\xffSMB":
        return _parse_smb1(message, offered)
    raise WireError("protocol", f"not an SMB message (starts {message[:8].hex() or 'empty'})")


def _u(fmt: str, data: bytes, offset: int) -> tuple:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise WireError("protocol", f"truncated SMB message ({len(data)} bytes, field at {offset})")
    return struct.unpack_from(fmt, data, offset)


def _parse_smb2(m: bytes, offered: str) -> NegotiateAnswer:
    (header_size,) = _u("<H", m, 4)
    status, command = _u("<IH", m, 8)
    flags = _u("<I", m, 16)[0]
    if header_size != 64 or command != SMB2_NEGOTIATE or not flags & 0x1:
        raise WireError("protocol", f"not an SMB2 NEGOTIATE response (size {header_size}, command {command})")
    if status != STATUS_SUCCESS:
        return NegotiateAnswer(False, "", None, None, None, status=status)
    size, mode, revision = _u("<HHH", m, 64)
    if size != 65:
        raise WireError("protocol", f"SMB2 NEGOTIATE response structure size {size} (expected 65)")
    (system_time,) = _u("<Q", m, 64 + 40)
    name = DIALECT_NAMES.get(revision, f"0x{revision:04x}")
    if SMB1_DIALECT == offered:
        # an SMB2-capable server answering our SMB1-only offer in SMB2 has not accepted SMB1
        return NegotiateAnswer(False, name, None, None, None)
    return NegotiateAnswer(name == offered, name, bool(mode & SMB2_NEGOTIATE_SIGNING_ENABLED),
                           bool(mode & SMB2_SIGNING_REQUIRED), filetime(system_time))


def _parse_smb1(m: bytes, offered: str) -> NegotiateAnswer:
    command, status = _u("<BI", m, 4)
    if command != smb.SMB.SMB_COM_NEGOTIATE:
        raise WireError("protocol", f"not an SMB1 NEGOTIATE response (command 0x{command:02x})")
    if status != STATUS_SUCCESS:
        return NegotiateAnswer(False, "", None, None, None, status=status)
    (words,) = _u("<B", m, 32)
    if words == 1:
        # DialectIndex only: none of the offered dialects (0xFFFF), or a pre-NT LM dialect
        return NegotiateAnswer(False, "", None, None, None)
    if words != 17:
        raise WireError("protocol", f"SMB1 NEGOTIATE response with {words} parameter words (expected 17)")
    index, mode = _u("<HB", m, 33)
    if index != 0 or offered != SMB1_DIALECT:
        return NegotiateAnswer(False, "", None, None, None)
    low, high = _u("<II", m, 33 + 2 + 1 + 2 + 2 + 4 + 4 + 4 + 4)
    return NegotiateAnswer(True, SMB1_DIALECT, bool(mode & SMB1_SIGNING_ENABLED), bool(mode & SMB1_SIGNING_REQUIRED),
                           filetime(high << 32 | low))


# -- directory listings -------------------------------------------------------------------------------------------
FILE_ATTRIBUTE_DIRECTORY = 0x10
MAX_ENTRIES_PER_ANSWER = 4096        # a 64 KiB QUERY_DIRECTORY answer holds at most ~900 short names


def directory_entries(raw: bytes) -> list[tuple[str, bool]]:
    """(name, is a folder) of each FILE_FULL_DIR_INFORMATION record (MS-FSCC 2.4.14) in a QUERY_DIRECTORY answer,
    following NextEntryOffset; anything malformed raises WireError."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for _ in range(MAX_ENTRIES_PER_ANSWER):
        nxt, = _u("<I", raw, pos)
        attributes, name_len = _u("<II", raw, pos + 56)
        if name_len % 2 or pos + 68 + name_len > len(raw):
            raise WireError("protocol", f"directory entry at {pos}: bad file name length {name_len}")
        name = raw[pos + 68:pos + 68 + name_len].decode("utf-16-le", "replace")
        out.append((name, bool(attributes & FILE_ATTRIBUTE_DIRECTORY)))
        if nxt == 0:
            return out
        if nxt < 68 or pos + nxt >= len(raw):
            raise WireError("protocol", f"directory entry at {pos}: bad next-entry offset {nxt}")
        pos += nxt
    raise WireError("protocol", f"more than {MAX_ENTRIES_PER_ANSWER} entries in one directory answer")
