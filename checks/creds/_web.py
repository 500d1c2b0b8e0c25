"""A small bounded HTTP/1.1 client for the web logins of creds.default (HTTP Basic and HTML forms).

Why not http.client: its reads block until they get the bytes they asked for, so a console that trickles
one byte a second, or never ends its headers, holds the attempt for minutes. Here every request has one
time budget and byte caps (scanner.sdk.http_wire: 32 KiB of head, 256 KiB of body), every socket comes from
`ctx.connect` (scope, safe-mode pacing, back-off), and TLS is spoken without certificate verification
(we test the login, not the certificate: tls.scan judges that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from scanner.sdk import CheckContext, CheckError
from scanner.sdk.http_wire import (
    MAX_BODY,
    Head,
    dechunk,
    decoded,
    open_http_socket,
    read_response_head,
    recv_until,
)

FETCH_BUDGET = 8.0          # seconds for one request/response, whatever the peer's pace
CONNECT_TIMEOUT = 5.0
MAX_COOKIES = 30
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Response:
    status: int
    head: Head
    body: bytes
    url: str                      # absolute URL that was requested
    seconds: float
    truncated: bool = False       # body cut at MAX_BODY or at the time budget

    @property
    def location(self) -> str:
        """The redirect target, absolute (resolved against the request URL), '' when none."""
        loc = self.head.get("location") or ""
        try:
            return urljoin(self.url, loc.strip())[:1000] if loc else ""
        except ValueError:
            return ""

    @property
    def set_cookies(self) -> dict[str, str]:
        return parse_set_cookies(self.head.get_all("set-cookie"))


@dataclass
class Origin:
    """scheme://host:port of the service under test; the only origin we ever send requests to."""

    host: str
    port: int
    tls: bool
    names: tuple[str, ...] = field(default_factory=tuple)   # host names that mean this asset (inventory)

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return f"{'https' if self.tls else 'http'}://{host}{'' if self.port == default else f':{self.port}'}{path}"

    def path_of(self, url: str) -> str | None:
        """Path+query of `url` when it is on this origin, else None (never followed: scope and honesty)."""
        try:
            u = urlsplit(url)
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            return None
        hosts = {self.host.lower(), *(n.lower() for n in self.names if n)}
        if u.scheme != ("https" if self.tls else "http") or (u.hostname or "").lower() not in hosts \
                or port != self.port:
            return None
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        if any(c in path for c in "\r\n \t") or len(path) > 1000 or not path.startswith("/"):
            return None
        return path


def parse_set_cookies(values: list[str]) -> dict[str, str]:
    """name -> value of Set-Cookie headers (attributes ignored: we only send the session back, once)."""
    jar: dict[str, str] = {}
    for v in values[:MAX_COOKIES]:
        pair = v.split(";", 1)[0]
        name, sep, value = pair.partition("=")
        name = name.strip()
        # a cookie name is an RFC 9110 token; anything else would break our Cookie header
        if sep and name and len(name) <= 100 and all(33 <= ord(c) < 127 and c not in '()<>@,;:\\"/[]?={}'
                                                     for c in name):
            jar[name] = "".join(c for c in value.strip()[:4096] if 32 < ord(c) < 127 and c not in ';,')
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in list(jar.items())[:MAX_COOKIES])


def request(ctx: CheckContext, origin: Origin, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: bytes = b"") -> Response:
    """One request on a fresh connection (Connection: close), bounded in time and bytes."""
    if any(c in path for c in "\r\n") or not path.startswith("/"):
        raise ValueError(f"bad request path {path[:60]!r}")
    start = time.monotonic()
    deadline = start + min(FETCH_BUDGET, ctx.remaining())
    sock = open_http_socket(ctx, origin.port, origin.tls, deadline, CONNECT_TIMEOUT)
    try:
        host = f"[{ctx.address}]" if ":" in ctx.address else ctx.address
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}",
                 "User-Agent: tcmscan/1.0 (security assessment)", "Accept: text/html,*/*;q=0.8",
                 "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items() if v and "\n" not in v and "\r" not in v]
        if method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace") + body)
        except OSError as e:
            raise CheckError("connectivity", f"send to {ctx.address}:{origin.port} failed: {str(e)[:100]}") from None
        budget = deadline - start
        # silence is noted for the engine's back-off before the timeout is raised
        head, data = read_response_head(
            sock, deadline, f"no complete HTTP response header within {budget:.0f} s",
            on_silence=lambda: ctx.note_silence(f"no HTTP answer within {budget:.0f} s"))
        ctx.note_response(time.monotonic() - start, "http")
        length = head.get("content-length")
        want = int(length) if length and length.isdecimal() and len(length) < 13 else None   # not "\u00b2"
        chunked = "chunked" in (head.get("transfer-encoding") or "").lower()
        complete = True
        if method != "HEAD" and head.status not in (204, 304) and (want is None or len(data) < want):
            complete = recv_until(sock, deadline, data, lambda b: len(b) >= min(want or MAX_BODY, MAX_BODY)
                                   or (chunked and b.endswith(b"0\r\n\r\n")))
        truncated = len(data) >= MAX_BODY or not complete
        data = data[:MAX_BODY]
        out = decoded(dechunk(bytes(data)) if chunked else bytes(data), head.get("content-encoding"))
    finally:
        sock.close()
    return Response(status=head.status, head=head, body=out, url=origin.url(path),
                    seconds=time.monotonic() - start, truncated=truncated)
