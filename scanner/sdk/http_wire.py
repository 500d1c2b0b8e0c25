"""HTTP/1.1 response parsing for http.probe and creds.default: pure functions over bytes, bounded, never
raising on garbage except `HttpError` from `parse_head`, so hypothesis can drive them. The few socket helpers
at the end (`open_http_socket`, `recv_until`, `read_response_head`) are the bounded reads both checks share.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from scanner.sdk.context import CheckContext
from scanner.sdk.errors import CheckError

MAX_HEAD = 32 * 1024          # status line + headers
MAX_BODY = 256 * 1024         # body bytes read for the login-form and title search
MAX_HEADERS = 200


class HttpError(Exception):
    pass


@dataclass
class Head:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def parse_head(raw: bytes) -> Head:
    """Status line and headers (without the blank line). Obsolete line folding is joined."""
    lines = raw.split(b"\n")
    status = _text(lines[0]).strip()
    m = re.match(r"^(HTTP/\d(?:\.\d)?)\s+(\d{3})(?:\s+(.*))?$", status)
    if not m:
        raise HttpError(f"not an HTTP status line: {status[:60]!r}")
    head = Head(version=m.group(1), status=int(m.group(2)), reason=(m.group(3) or "")[:100])
    for line in lines[1:]:
        line_s = _text(line).rstrip("\r")
        if not line_s:
            continue
        if line_s[0] in " \t" and head.headers:    # obs-fold
            k, v = head.headers[-1]
            head.headers[-1] = (k, (v + " " + line_s.strip())[:4096])
            continue
        name, sep, value = line_s.partition(":")
        if not sep or not name.strip():
            continue                                # tolerate junk lines, as browsers do
        head.headers.append((name.strip().lower()[:100], value.strip()[:4096]))
        if len(head.headers) >= MAX_HEADERS:
            break
    return head


def parse_hsts(value: str | None) -> dict | None:
    """Strict-Transport-Security (RFC 6797 6.1): max-age (None if absent/invalid), includeSubDomains, preload."""
    if value is None:
        return None
    max_age: int | None = None
    include = preload = False
    for part in value.split(";"):
        name, _, v = part.strip().partition("=")
        name = name.strip().lower()
        v = v.strip().strip('"')
        if name == "max-age" and v.isdecimal() and len(v) <= 12:     # isdigit() is True for "\u00b9"
            max_age = int(v)
        elif name == "includesubdomains":
            include = True
        elif name == "preload":
            preload = True
    return {"max_age": max_age, "include_subdomains": include, "preload": preload, "raw": value[:200]}


def _split_commas(value: str) -> list[str]:
    """Split on commas outside double quotes."""
    parts, cur, quoted = [], [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_PARAM = re.compile(r'^([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("([^"]*)"?|[^\s]*)')


def parse_www_authenticate(values: list[str]) -> list[dict]:
    """[{scheme, realm}] from WWW-Authenticate headers (RFC 9110 11.6.1): a piece without '=' before its first
    space starts a challenge ('Basic realm="x"'), a 'name=value' piece is a parameter of the current one."""
    out: list[dict] = []
    for v in values:
        for piece in _split_commas(v[:4096]):
            piece = piece.strip()
            if not piece:
                continue
            m = _PARAM.match(piece)
            if m and out:
                if m.group(1).lower() == "realm" and out[-1]["realm"] is None:
                    out[-1]["realm"] = (m.group(3) if m.group(3) is not None else m.group(2))[:200]
                continue
            scheme, _, rest = piece.partition(" ")
            if "=" in scheme or len(out) >= 10:
                continue
            out.append({"scheme": scheme[:40], "realm": None})
            m = _PARAM.match(rest.strip())
            if m and m.group(1).lower() == "realm":
                out[-1]["realm"] = (m.group(3) if m.group(3) is not None else m.group(2))[:200]
    return out


def dechunk(body: bytes) -> bytes:
    """Transfer-Encoding: chunked (RFC 9112 7.1); a malformed or truncated stream yields what was decoded."""
    out = bytearray()
    pos = 0
    while pos < len(body) and len(out) < MAX_BODY:
        eol = body.find(b"\r\n", pos, pos + 1024)
        if eol < 0:
            break
        size_s = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            break
        if size <= 0:
            break
        out += body[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out[:MAX_BODY])


def decoded(body: bytes, content_encoding: str | None) -> bytes:
    """The body as the server meant it. We never ask for compression, yet some servers gzip anyway: the page's
    facts (a login form, its title) are then only in the inflated bytes. Inflated to at most MAX_BODY bytes, so
    a gzip bomb (1 MB that inflates to 1 GiB) costs MAX_BODY; an unknown coding, or a stream that does not
    inflate, is returned as it came."""
    coding = (content_encoding or "").strip().lower()
    if coding not in ("gzip", "x-gzip", "deflate"):
        return body
    # 47: a gzip or zlib header, whichever it is; -15: raw deflate, which some servers send as "deflate"
    for wbits in (47, -15):
        try:
            return zlib.decompressobj(wbits).decompress(body, MAX_BODY)
        except zlib.error:
            continue
    return body


PASSWORD_INPUT = re.compile(rb"<input\b[^>]{0,500}?\btype\s*=\s*[\"']?password\b", re.I)
TITLE = re.compile(rb"<title[^>]{0,100}>([^<]{0,300})", re.I)


def page_facts(body: bytes, content_type: str | None) -> dict:
    """What the page shows: a password field (a login form), its title."""
    charset = "utf-8"
    m = re.search(r"charset=([\w-]+)", content_type or "", re.I)
    if m:
        charset = m.group(1)
    t = TITLE.search(body)
    try:
        title = t.group(1).decode(charset, errors="replace").strip() if t else ""
    except (LookupError, UnicodeError):   # no such codec, or one that fails whatever it reads ("undefined")
        title = t.group(1).decode("utf-8", errors="replace").strip() if t else ""
    return {"password_form": bool(PASSWORD_INPUT.search(body)), "title": title[:120]}


def lenient_tls_context() -> ssl.SSLContext:
    """Verification off and old protocols allowed on purpose: a legacy HTTPS server or device console
    (TLS 1.0, 1024-bit RSA, SHA-1) must still show us its page; judging its TLS is tls.scan's job."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        c.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return c


def open_http_socket(ctx: CheckContext, port: int, tls: bool, deadline: float, connect_timeout: float
                     ) -> socket.socket:
    """A connection to the target's port, TLS-wrapped (leniently) when `tls`, within the deadline. Raises
    CheckError: 'timeout' or 'protocol' for a TLS handshake that stalls or fails; connect errors are ctx's."""
    raw = ctx.connect(port, timeout=min(connect_timeout, ctx.remaining()))
    if not tls:
        return raw
    raw.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        return ctx.wrap_tls(raw, lenient_tls_context())
    except TimeoutError:
        raw.close()
        raise CheckError("timeout", f"TLS handshake with {ctx.address}:{port} timed out") from None
    except (ssl.SSLError, OSError) as e:
        raw.close()
        raise CheckError("protocol", f"TLS handshake with {ctx.address}:{port} failed: {str(e)[:100]}") from None


def recv_until(sock: socket.socket, deadline: float, buf: bytearray, done) -> bool:
    """Read into buf until done(buf), EOF or the deadline; True when done(buf) or EOF."""
    while not done(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return False
        except (ssl.SSLError, OSError):
            return True           # a reset after the response is an end of body
        if not chunk:
            return True
        buf += chunk
    return True


def read_response_head(sock: socket.socket, deadline: float, timeout_detail: str,
                       on_silence: Callable[[], None] | None = None) -> tuple[Head, bytearray]:
    """Read and parse the response head, bounded by MAX_HEAD and the deadline: (head, bytes read after the
    blank line, i.e. the start of the body). Raises CheckError: 'protocol' for an oversized, absent or
    unparsable head, 'timeout' (with the caller's `timeout_detail`, after `on_silence` so a caller can note
    the silence for back-off) when the head did not complete in time. A head ended by EOF is parsed as is."""
    buf = bytearray()
    finished = recv_until(sock, deadline, buf, lambda b: b"\r\n\r\n" in b or len(b) > MAX_HEAD)
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise CheckError("protocol", f"HTTP header larger than {MAX_HEAD} bytes")
        if not finished:
            if on_silence is not None:
                on_silence()
            raise CheckError("timeout", timeout_detail)
        if not buf:
            raise CheckError("protocol", "connection closed without an HTTP response")
        end = len(buf)   # headers ended by EOF: parse what came
    try:
        head = parse_head(bytes(buf[:end]))
    except HttpError as e:
        raise CheckError("protocol", str(e)) from None
    return head, bytearray(buf[end + 4:])
