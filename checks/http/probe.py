"""http.probe: what a web endpoint shows to an unauthenticated visitor: status, Server header, HSTS,
HTTP authentication challenges, a login (password) form, and where it redirects (to HTTPS or not).

One GET / and at most one more GET for a redirect to the same host. TLS is spoken where nmap saw a TLS
tunnel or the port is 443/8443, with certificate verification OFF: the certificate is tls.scan's business,
this check only needs the page. Facts only; rules crypto.tls.no-hsts and crypto.cleartext.http-admin judge.

Observation key `http`:
    url, tls, status, server, location, redirect_https, hsts {max_age, include_subdomains, preload, raw} | None,
    www_authenticate [{scheme, realm}], password_form, title, body_bytes, followed {same fields} | None
"""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation
from scanner.sdk.http_wire import (
    MAX_BODY,
    Head,
    dechunk,
    decoded,
    open_http_socket,
    page_facts,
    parse_hsts,
    parse_www_authenticate,
    read_response_head,
    recv_until,
)

META = CheckMeta(
    id="http.probe",
    version="1.0",
    title_zh="Web服务登录页面、HTTP认证与HSTS",
    title_en="Web endpoint: login pages, HTTP authentication, HSTS, HTTPS redirect",
    granularity="service",
    services=("http", "https", "http-alt", "https-alt", "http-proxy"),
    ports=(80, 443, 8080, 8443),
    timeout=20.0,
    description="GET / (and one same-host redirect) over HTTP or TLS without certificate verification; "
                "body read up to 256 KiB.",
)
TLS_PORTS = (443, 8443)
FETCH_BUDGET = 8.0          # seconds for one request/response, whatever the peer's pace
REDIRECTS = (301, 302, 303, 307, 308)


def uses_tls(service) -> bool:
    return service.tunnel == "ssl" or service.name in ("https", "https-alt") or service.port in TLS_PORTS


def fetch(ctx: CheckContext, port: int, tls: bool, path: str = "/") -> dict:
    deadline = time.monotonic() + min(FETCH_BUDGET, ctx.remaining())
    sock = open_http_socket(ctx, port, tls, deadline, 5.0)
    try:
        host = f"[{ctx.address}]" if ":" in ctx.address else ctx.address
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcmscan/1.0 (security assessment)\r\n"
               "Accept: text/html,*/*;q=0.8\r\nConnection: close\r\n\r\n")
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(req.encode("ascii", errors="replace"))
        except OSError as e:
            raise CheckError("connectivity", f"send to {ctx.address}:{port} failed: {e}") from None
        head, body = read_response_head(
            sock, deadline, f"no complete HTTP response header within {FETCH_BUDGET:.0f} s")
        want = content_length(head)
        chunked = "chunked" in (head.get("transfer-encoding") or "").lower()
        if head.status not in (204, 304) and (want is None or len(body) < want):
            recv_until(sock, deadline, body, lambda b: len(b) >= min(want or MAX_BODY, MAX_BODY)
                        or (chunked and b.endswith(b"0\r\n\r\n")))
        body = body[:MAX_BODY]
        if chunked:
            body = bytearray(dechunk(bytes(body)))
        body = bytearray(decoded(bytes(body), head.get("content-encoding")))
    finally:
        sock.close()
    scheme = "https" if tls else "http"
    default = 443 if tls else 80
    return response_facts(head, bytes(body), f"{scheme}://{host}{'' if port == default else f':{port}'}{path}", tls)


def content_length(head: Head) -> int | None:
    length = head.get("content-length")
    # isdecimal, not isdigit: "\u00b2" (a latin-1 byte) is a digit int() refuses
    return int(length) if length and length.isdecimal() else None


def response_facts(head: Head, body: bytes, url: str, tls: bool) -> dict:
    """The observation's facts from one response (pure: tests/fuzz/test_http.py drives it)."""
    location = head.get("location")
    try:
        target = urljoin(url, location) if location else None
        https = bool(target and urlsplit(target).scheme == "https")
    except ValueError:          # "http://[x": not a URL; said as sent, never followed
        target, https = location, False
    return {
        "url": url, "tls": tls, "status": head.status, "server": (head.get("server") or "")[:200],
        "location": (target or "")[:500],
        "redirect_https": https and head.status in REDIRECTS,
        "hsts": parse_hsts(head.get("strict-transport-security")) if tls else None,
        "www_authenticate": parse_www_authenticate(head.get_all("www-authenticate")),
        **page_facts(body, head.get("content-type")),
        "body_bytes": len(body),
    }


def _same_host_target(ctx: CheckContext, location: str) -> tuple[int, bool, str] | None:
    """(port, tls, path) of a redirect we may follow: same host only (scope), http(s) only."""
    try:
        u = urlsplit(location)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or (u.hostname or "").lower() not in (ctx.address.lower(),
                                                                                (ctx.asset.name or "").lower()):
        return None
    tls = u.scheme == "https"
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if any(c in path for c in "\r\n ") or len(path) > 1000:
        return None
    return (port or (443 if tls else 80), tls, path)


def run(ctx: CheckContext) -> list[Observation]:
    svc = ctx.service
    assert svc is not None
    first = fetch(ctx, svc.port, uses_tls(svc))
    first["followed"] = None
    if first["status"] in REDIRECTS and first["location"]:
        nxt = _same_host_target(ctx, first["location"])
        if nxt is not None:
            try:
                first["followed"] = fetch(ctx, *nxt)
            except CheckError as e:   # the first page is still a fact; say why the second is missing
                first["followed"] = {"url": first["location"], "error": f"{e.reason}: {e.detail}"[:200]}
    return [ctx.observation("http", first)]
