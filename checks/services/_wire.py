"""Tiny, bounded probes of database and cache protocols: what a server answers BEFORE any login.

One request and one bounded reply per probe; no library for these (redis-py, pymongo, psycopg would log in,
pool connections and retry on their own). Every parser takes untrusted bytes and either returns plain data
or raises `WireError`; lengths are capped so a hostile peer cannot make us allocate or wait without bound.

References: Redis RESP (redis.io/docs/reference/protocol-spec), memcached protocol.txt, MySQL client/server
protocol "Initial Handshake Packet" (dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase
_packets_protocol_handshake_v10.html), PostgreSQL "Message Formats" (protocol 3.0), MongoDB OP_MSG wire
protocol and BSON spec (bsonspec.org), SQL Server [MS-TDS] 2.2.6.5 PRELOGIN (learn.microsoft.com/en-us/
openspecs/windows_protocols/ms-tds).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from typing import Any

MAX_REPLY = 64 * 1024          # no answer we read is larger (INFO server is ~1.5 KiB)


class WireError(Exception):
    """Malformed, oversized or unexpected data from the peer."""


def recv_until(sock: socket.socket, done: Any, deadline: float, limit: int = MAX_REPLY) -> bytes:
    """Read until done(buffer) is true, the peer closes, `limit` bytes, or the deadline (then WireError)."""
    buf = b""
    while not done(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise WireError("timeout waiting for the reply")
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise WireError("timeout waiting for the reply") from None
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise WireError(f"reply larger than {limit} bytes")
    return buf


# ------------------------------------------------------------------ Redis (RESP)

def redis_command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def resp_complete(buf: bytes) -> bool:
    """True once `buf` holds one whole simple/error/integer line or bulk string."""
    if not buf.endswith(b"\n") and not buf.startswith(b"$"):
        return False
    if buf[:1] in (b"+", b"-", b":"):
        return b"\r\n" in buf
    if buf[:1] == b"$":
        head, sep, rest = buf.partition(b"\r\n")
        if not sep:
            return False
        try:
            n = int(head[1:])
        except ValueError:
            return True          # malformed: stop reading, the parser says why
        return n < 0 or len(rest) >= n + 2
    return b"\r\n" in buf


def parse_resp(buf: bytes) -> tuple[str, str]:
    """One RESP reply -> (kind, text): kind is 'ok' (+), 'error' (-), 'int' (:), 'bulk' ($), 'nil'."""
    if not buf:
        raise WireError("empty reply")
    t = buf[:1]
    if t in (b"+", b"-", b":"):
        line = buf[1:].split(b"\r\n", 1)[0]
        return {b"+": "ok", b"-": "error", b":": "int"}[t], line.decode("utf-8", "replace")[:512]
    if t == b"$":
        head, _, rest = buf.partition(b"\r\n")
        try:
            n = int(head[1:])
        except ValueError:
            raise WireError("bad bulk length") from None
        if n < 0:
            return "nil", ""
        if n > MAX_REPLY or len(rest) < n:
            raise WireError("truncated bulk reply")
        return "bulk", rest[:n].decode("utf-8", "replace")
    raise WireError(f"not a RESP reply (starts with {buf[:8]!r})")


def info_fields(text: str) -> dict[str, str]:
    """`INFO` text (key:value lines) -> dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()[:64]] = v.strip()[:256]
    return out


# ------------------------------------------------------------------ memcached (text protocol)

def parse_memcached_version(buf: bytes) -> str | None:
    """`VERSION 1.6.18` -> '1.6.18'; None for any other answer (SASL-only servers answer ERROR)."""
    line = buf.split(b"\r\n", 1)[0].decode("ascii", "replace")
    m = re.fullmatch(r"VERSION (\S{1,64})", line)
    return m.group(1) if m else None


# ------------------------------------------------------------------ MySQL / MariaDB greeting

def mysql_packet_complete(buf: bytes) -> bool:
    return len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:3], "little")


def parse_mysql_greeting(buf: bytes) -> dict[str, Any]:
    """The server's first packet: protocol 10 handshake, or an ERR packet (host not allowed, too many
    connections). Returns {kind: 'handshake'|'error', version, auth_plugin, error_code, message}."""
    if len(buf) < 5:
        raise WireError("short MySQL packet")
    length = int.from_bytes(buf[:3], "little")
    payload = buf[4:4 + length]
    if len(payload) < length or length < 1:
        raise WireError("truncated MySQL packet")
    if payload[0] == 0xFF:
        code = int.from_bytes(payload[1:3], "little") if len(payload) >= 3 else 0
        msg = payload[3:]
        if msg.startswith(b"#"):
            msg = msg[6:]          # SQL state marker + 5-byte state
        return {"kind": "error", "error_code": code, "message": msg.decode("utf-8", "replace")[:200]}
    if payload[0] != 10:
        raise WireError(f"unsupported MySQL protocol version {payload[0]}")
    end = payload.find(b"\0", 1)
    if end < 0 or end > 100:
        raise WireError("no server version string")
    version = payload[1:end].decode("ascii", "replace")
    p = end + 1 + 4 + 8 + 1                # connection id, auth data part 1, filler
    plugin = ""
    # CLIENT_SSL (0x0800) in the lower capability flags: the server takes a TLS upgrade
    ssl = bool(int.from_bytes(payload[p:p + 2], "little") & 0x0800) if len(payload) >= p + 2 else None
    if len(payload) >= p + 2 + 1 + 2 + 2 + 1 + 10:
        caps = int.from_bytes(payload[p:p + 2], "little") | int.from_bytes(payload[p + 5:p + 7], "little") << 16
        auth_len = payload[p + 7]
        q = p + 8 + 10 + max(13, auth_len - 8)
        if caps & 0x00080000 and q < len(payload):            # CLIENT_PLUGIN_AUTH
            plugin = payload[q:].split(b"\0", 1)[0].decode("ascii", "replace")[:64]
    return {"kind": "handshake", "version": version, "auth_plugin": plugin, "ssl": ssl}


def mariadb_version(version: str) -> tuple[str, str]:
    """'5.5.5-10.11.6-MariaDB-0+deb12u1' -> ('mariadb', '10.11.6-MariaDB-0+deb12u1'); MySQL otherwise."""
    if "mariadb" in version.lower():
        return "mariadb", version[6:] if version.startswith("5.5.5-") else version
    return "mysql", version


# ------------------------------------------------------------------ PostgreSQL (protocol 3.0)

def pg_startup(user: str, database: str) -> bytes:
    body = struct.pack("!I", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in (("user", user), ("database", database),
                                                            ("application_name", "tcmscan"))) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


# SSLRequest: length 8, code 80877103; the server answers one byte, S (go ahead with TLS) or N.
PG_SSL_REQUEST = struct.pack("!II", 8, 80877103)


def parse_pg_ssl_answer(buf: bytes) -> bool:
    """The answer to SSLRequest: True for S, False for N (or an error message from a pre-7.0 server)."""
    if buf[:1] == b"S" and len(buf) == 1:
        return True
    if buf[:1] in (b"N", b"E"):
        return False
    raise WireError(f"not an answer to SSLRequest: {buf[:8]!r}")


def pg_messages(buf: bytes) -> list[tuple[str, bytes]]:
    """Split whole backend messages (type byte, int32 length incl. itself, body); a partial tail is left out."""
    out: list[tuple[str, bytes]] = []
    i = 0
    while len(buf) - i >= 5:
        t = chr(buf[i])
        n = struct.unpack("!I", buf[i + 1:i + 5])[0]
        if n < 4 or n > MAX_REPLY:
            raise WireError(f"bad PostgreSQL message length {n}")
        if len(buf) - i - 1 < n:
            break
        out.append((t, buf[i + 5:i + 1 + n]))
        i += 1 + n
        if len(out) > 200:
            raise WireError("too many PostgreSQL messages")
    return out


PG_AUTH = {0: "ok", 2: "kerberos", 3: "cleartext", 5: "md5", 7: "gss", 9: "sspi", 10: "sasl"}


def pg_reply_done(buf: bytes) -> bool:
    try:
        msgs = pg_messages(buf)
    except WireError:
        return True
    for t, body in msgs:
        if t in ("E", "Z") or (t == "R" and body[:4] != b"\0\0\0\0"):
            return True
    return False


def parse_pg_reply(buf: bytes) -> dict[str, Any]:
    """Answer to our StartupMessage -> {auth: ok|md5|sasl|..., error_code, message, server_version}."""
    if buf[:1] == b"N" and len(buf) == 1:
        raise WireError("server refused the request")
    out: dict[str, Any] = {"auth": "", "error_code": "", "message": "", "server_version": ""}
    for t, body in pg_messages(buf):
        if t == "R" and len(body) >= 4:
            code = struct.unpack("!I", body[:4])[0]
            if not out["auth"]:
                out["auth"] = PG_AUTH.get(code, f"code-{code}")
        elif t == "E":
            fields = {f[:1].decode("ascii", "replace"): f[1:].decode("utf-8", "replace")[:200]
                      for f in body.split(b"\0") if f}
            out["error_code"], out["message"] = fields.get("C", ""), fields.get("M", "")
        elif t == "S":
            parts = body.split(b"\0")
            if len(parts) >= 2 and parts[0] == b"server_version":
                out["server_version"] = parts[1].decode("ascii", "replace")[:64]
    if not out["auth"] and not out["error_code"]:
        raise WireError("no authentication request or error in the reply")
    return out


# ------------------------------------------------------------------ MongoDB (OP_MSG + minimal BSON)

def bson_encode(doc: dict[str, Any]) -> bytes:
    """Enough BSON for our commands: str, int (int32), bool, nested dict."""
    body = b""
    for k, v in doc.items():
        key = k.encode() + b"\0"
        if isinstance(v, bool):
            body += b"\x08" + key + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            body += b"\x10" + key + struct.pack("<i", v)
        elif isinstance(v, str):
            s = v.encode() + b"\0"
            body += b"\x02" + key + struct.pack("<i", len(s)) + s
        elif isinstance(v, dict):
            body += b"\x03" + key + bson_encode(v)
        else:
            raise TypeError(f"bson_encode: unsupported {type(v).__name__}")
    return struct.pack("<i", len(body) + 5) + body + b"\0"


_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x0A: 0, 0x06: 0,
          0xFF: 0, 0x7F: 0}


def bson_decode(data: bytes, depth: int = 0) -> dict[str, Any]:
    """Decode one BSON document; types we do not need come back as None. Raises WireError on bad input."""
    if depth > 8:
        raise WireError("BSON nested too deep")
    if len(data) < 5:
        raise WireError("short BSON document")
    n = struct.unpack("<i", data[:4])[0]
    if n < 5 or n > len(data) or data[n - 1] != 0:
        raise WireError("bad BSON length")
    out: dict[str, Any] = {}
    i = 4
    while i < n - 1:
        t = data[i]
        end = data.find(b"\0", i + 1, n)
        if end < 0:
            raise WireError("unterminated BSON key")
        key = data[i + 1:end].decode("utf-8", "replace")
        i = end + 1
        if t in (0x02, 0x0D, 0x0E):                           # string, js code, symbol
            if i + 4 > n:
                raise WireError("truncated BSON string")
            ln = struct.unpack("<i", data[i:i + 4])[0]
            if ln < 1 or i + 4 + ln > n:
                raise WireError("bad BSON string length")
            out[key] = data[i + 4:i + 3 + ln].decode("utf-8", "replace")
            i += 4 + ln
        elif t in (0x03, 0x04):                                # document, array
            if i + 4 > n:
                raise WireError("truncated BSON document")
            ln = struct.unpack("<i", data[i:i + 4])[0]
            if ln < 5 or i + ln > n:
                raise WireError("bad nested BSON length")
            sub = bson_decode(data[i:i + ln], depth + 1)
            out[key] = list(sub.values()) if t == 0x04 else sub
            i += ln
        elif t == 0x05:                                        # binary
            if i + 5 > n:
                raise WireError("truncated BSON binary")
            ln = struct.unpack("<i", data[i:i + 4])[0]
            if ln < 0 or i + 5 + ln > n:
                raise WireError("bad BSON binary length")
            out[key] = None
            i += 5 + ln
        elif t in _FIXED:
            size = _FIXED[t]
            if i + size > n:
                raise WireError("truncated BSON value")
            raw = data[i:i + size]
            if t == 0x01:
                out[key] = struct.unpack("<d", raw)[0]
            elif t == 0x08:
                out[key] = raw != b"\x00"
            elif t == 0x10:
                out[key] = struct.unpack("<i", raw)[0]
            elif t == 0x12:
                out[key] = struct.unpack("<q", raw)[0]
            else:
                out[key] = None
            i += size
        else:
            raise WireError(f"unsupported BSON type 0x{t:02x}")
    return out


def mongo_op_msg(request_id: int, doc: dict[str, Any]) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson_encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


def mongo_complete(buf: bytes) -> bool:
    return len(buf) >= 4 and len(buf) >= struct.unpack("<i", buf[:4])[0]


def parse_mongo_reply(buf: bytes) -> dict[str, Any]:
    """An OP_MSG reply -> its body document."""
    if len(buf) < 21:
        raise WireError("short MongoDB reply")
    length, _rid, _to, opcode = struct.unpack("<iiii", buf[:16])
    if length > len(buf) or length < 21:
        raise WireError("bad MongoDB message length")
    if opcode != 2013:
        raise WireError(f"MongoDB opcode {opcode} (server older than 3.6?)")
    if buf[20] != 0:
        raise WireError("MongoDB reply without a body section")
    return bson_decode(buf[21:length])


# ------------------------------------------------------------------ SQL Server TDS PRELOGIN ([MS-TDS] 2.2.6.5)
#
# A TDS packet: 8-byte header (type, status, length big-endian including the header, SPID, packet id, window),
# then the PRELOGIN payload: an option table of (token 1 byte, offset 2 BE, length 2 BE) entries, offsets from
# the payload's start, ended by 0xFF, then the option data. The client's PRELOGIN is packet type 0x12; the
# server answers with type 0x04 (tabular result) holding the same structure. ENCRYPTION (token 0x01, 1 byte):
# ENCRYPT_OFF 0x00 (TLS available, used for the login packet only), ENCRYPT_ON 0x01, ENCRYPT_NOT_SUP 0x02 (no
# TLS at all), ENCRYPT_REQ 0x03 (TLS required); 0x80 ORed in = ENCRYPT_CLIENT_CERT (a client certificate).
# The values as in impacket's tds.py (TDS_ENCRYPT_OFF ... TDS_ENCRYPT_REQ).

TDS_PRELOGIN, TDS_REPLY = 0x12, 0x04
TDS_MAX_PACKET = 32767                       # the largest packet size a TDS peer may negotiate
PRELOGIN_ENCRYPTION = {0x00: "ENCRYPT_OFF", 0x01: "ENCRYPT_ON", 0x02: "ENCRYPT_NOT_SUP", 0x03: "ENCRYPT_REQ"}
_PRELOGIN_MAX_OPTIONS = 32


def tds_packet(kind: int, payload: bytes, packet_id: int = 1) -> bytes:
    """One whole TDS packet (status EOM)."""
    return struct.pack(">BBHHBB", kind, 0x01, 8 + len(payload), 0, packet_id, 0) + payload


def prelogin_payload(options: list[tuple[int, bytes]]) -> bytes:
    """A PRELOGIN option table and its data, in the given order."""
    table_len = 5 * len(options) + 1
    table, data = b"", b""
    for token, value in options:
        table += struct.pack(">BHH", token, table_len + len(data), len(value))
        data += value
    return table + b"\xff" + data


def tds_prelogin_request(encryption: int = 0x00) -> bytes:
    """Our PRELOGIN: VERSION (ours, zero), ENCRYPTION (ENCRYPT_OFF: we ask for none, so the answer says what the
    server does on its own), INSTOPT (empty: the default instance), THREADID, MARS off."""
    return tds_packet(TDS_PRELOGIN, prelogin_payload([
        (0x00, bytes(6)), (0x01, bytes([encryption])), (0x02, b"\x00"), (0x03, bytes(4)), (0x04, b"\x00")]))


def tds_packet_complete(buf: bytes) -> bool:
    """True once `buf` holds the header's announced length (or a header too short to be one, or a first byte
    that is no TDS reply: stop reading, the parser says why)."""
    if buf[:1] not in (b"", bytes([TDS_REPLY])):
        return True
    if len(buf) < 8:
        return False
    n = int.from_bytes(buf[2:4], "big")
    return n < 8 or len(buf) >= n


def parse_tds_prelogin(buf: bytes) -> dict[str, Any]:
    """The server's PRELOGIN answer -> {encryption: int, encryption_name, client_cert: bool, version: str,
    options: [tokens]}. Raises WireError for anything but one whole type-0x04 packet with a sane option table
    and an ENCRYPTION option."""
    if buf[:1] and buf[0] != TDS_REPLY:
        raise WireError(f"not a TDS reply (packet type 0x{buf[0]:02x})")
    if len(buf) < 8:
        raise WireError("short TDS packet")
    status, length = buf[1], int.from_bytes(buf[2:4], "big")
    if length < 9 or length > len(buf) or length > TDS_MAX_PACKET:
        raise WireError(f"bad TDS packet length {length}")
    if not status & 0x01:
        raise WireError("PRELOGIN answer spread over several packets")
    payload = buf[8:length]
    options: dict[int, bytes] = {}
    i = 0
    while True:
        if i >= len(payload):
            raise WireError("PRELOGIN option table without terminator")
        token = payload[i]
        if token == 0xFF:
            break
        if i + 5 > len(payload):
            raise WireError("truncated PRELOGIN option table")
        off, n = struct.unpack(">HH", payload[i + 1:i + 5])
        if off + n > len(payload):
            raise WireError(f"PRELOGIN option 0x{token:02x} outside the packet")
        if token in options:
            raise WireError(f"PRELOGIN option 0x{token:02x} twice")
        options[token] = payload[off:off + n]
        i += 5
        if len(options) > _PRELOGIN_MAX_OPTIONS:
            raise WireError("too many PRELOGIN options")
    enc = options.get(0x01, b"")
    if len(enc) != 1:
        raise WireError("PRELOGIN answer without a one-byte ENCRYPTION option")
    version = ""
    v = options.get(0x00, b"")
    if len(v) >= 6:
        version = f"{v[0]}.{v[1]}.{int.from_bytes(v[2:4], 'big')}.{int.from_bytes(v[4:6], 'big')}"
    value = enc[0]
    return {"encryption": value, "encryption_name": PRELOGIN_ENCRYPTION.get(value & 0x7F, f"0x{value:02x}"),
            "client_cert": bool(value & 0x80), "version": version, "options": sorted(options)}
