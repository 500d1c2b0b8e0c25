"""http.consoles: admin, diagnostic and API-documentation pages a visitor reaches without logging in (Tomcat
manager, Spring Boot actuator, Druid, Swagger UI, Nacos, phpMyAdmin, WebLogic, JBoss...), and the web surface
of "/" (directory listing, TRACE echo, frame protection and cookie flags of a login page).

Requests: GET / ; TRACE / (one, with a random header value to recognise the echo); GET of a random path (what
the server says for a page that does not exist); then each path of baselines/knowledge/web_consoles.yaml once,
GET (HEAD where the answer may be large, e.g. a heap dump), at most `max_requests` in all. Never a login, never
POST/PUT/DELETE. Bodies read up to 64 KiB. Intrusive (a few dozen requests): never on fragile assets.

Observations (facts only; rules hardening.web-console-*, hardening.http-* judge):
  `web-surface`: url, status, server, title, directory_listing, password_form, frame_protection, csp,
                 cookies [{name, secure, httponly, samesite}] (names and flags, never values), trace_enabled,
                 trace_status
  `consoles`: tried, not_found_status, complete, found [{id, product, kind, path, status, login, open}]
      login: "basic"/"digest"/... (the challenge's scheme), "form" (a password field), "denied" (403), "" (none)
      open: the page's marker is there, status 200 and no login
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from checks.http.probe import uses_tls
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation
from scanner.sdk.http_wire import (
    Head,
    dechunk,
    decoded,
    open_http_socket,
    page_facts,
    parse_www_authenticate,
    read_response_head,
    recv_until,
)

META = CheckMeta(
    id="http.consoles",
    version="1.0",
    title_zh="无需登录可访问的管理/诊断控制台与Web暴露面",
    title_en="Admin and diagnostic web consoles reachable without login; web surface hygiene",
    granularity="service",
    services=("http", "https", "http-alt", "https-alt", "http-proxy"),
    ports=(80, 443, 8080, 8443),
    intrusive=True,
    timeout=90.0,
    description="GET /, one TRACE /, then GET/HEAD of known console paths (knowledge table web_consoles); "
                "status, login challenge and a page marker recorded, no login attempted.",
)
REQUEST_BUDGET = 8.0
MAX_BODY = 64 * 1024
LISTING = re.compile(r"^(Index of /|Directory Listing For )", re.I)   # Apache/nginx, Tomcat


@dataclass
class Response:
    head: Head
    body: bytes


def request(ctx: CheckContext, method: str, path: str, extra: str = "") -> Response:
    """One request on a new connection; head ≤ 32 KiB and body ≤ 64 KiB within REQUEST_BUDGET seconds."""
    svc = ctx.service
    assert svc is not None
    deadline = time.monotonic() + min(REQUEST_BUDGET, ctx.remaining())
    sock = open_http_socket(ctx, svc.port, uses_tls(svc), deadline, 5.0)
    try:
        host = f"[{ctx.address}]" if ":" in ctx.address else ctx.address
        req = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcmscan/1.0 (security assessment)\r\n"
               f"Accept: */*\r\n{extra}Connection: close\r\n\r\n")
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(req.encode("ascii", errors="replace"))
        except OSError as e:
            raise CheckError("connectivity", f"send to {ctx.address}:{svc.port} failed: {e}") from None
        head, body = read_response_head(sock, deadline, f"{method} {path}: no complete HTTP response header "
                                                        f"within {REQUEST_BUDGET:.0f} s")
        if method != "HEAD" and head.status not in (204, 304):
            recv_until(sock, deadline, body, lambda b: len(b) >= MAX_BODY)
        raw = bytes(body[:MAX_BODY])
        if "chunked" in (head.get("transfer-encoding") or "").lower():
            raw = dechunk(raw)
        return Response(head, decoded(raw, head.get("content-encoding")))
    finally:
        sock.close()


def cookie_flags(values: list[str]) -> list[dict]:
    """Set-Cookie headers -> name and flags (pure). The value is never kept."""
    out = []
    for v in values[:20]:
        parts = [p.strip() for p in v.split(";")]
        name = parts[0].partition("=")[0][:60]
        attrs = {p.partition("=")[0].strip().lower(): p.partition("=")[2].strip() for p in parts[1:]}
        out.append({"name": name, "secure": "secure" in attrs, "httponly": "httponly" in attrs,
                    "samesite": attrs.get("samesite", "")[:10]})
    return out


def frame_protected(head: Head) -> bool:
    """X-Frame-Options DENY/SAMEORIGIN or a CSP frame-ancestors directive (pure)."""
    xfo = (head.get("x-frame-options") or "").strip().lower()
    csp = " ".join(head.get_all("content-security-policy")).lower()
    return xfo in ("deny", "sameorigin") or "frame-ancestors" in csp


def login_of(r: Response, password_form: bool) -> str:
    if r.head.status == 401:
        challenges = parse_www_authenticate(r.head.get_all("www-authenticate"))
        return challenges[0]["scheme"] if challenges else "unknown"
    if r.head.status == 403:
        return "denied"
    return "form" if password_form else ""


def _marked(entry: dict, r: Response) -> bool:
    if entry.get("method") == "HEAD":
        return r.head.status == 200 and (r.head.get("content-type") or "").lower().startswith(entry["content_type"])
    return r.head.status == 200 and entry["marker"].encode() in r.body   # 200 only: 404 pages echo the path


def console_facts(entry: dict, r: Response, not_found: Response) -> dict | None:
    """One console path's facts, or None when nothing is there (pure). `not_found` is the answer for a random
    path: a catch-all page carrying the marker, or a server guarding every path, says nothing about this one."""
    present = _marked(entry, r) and not _marked(entry, not_found)
    page = page_facts(r.body, r.head.get("content-type"))
    login = login_of(r, page["password_form"])
    guarded = r.head.status in (401, 403) and not_found.head.status not in (401, 403)
    if not present and not guarded:
        return None
    return {"id": entry["id"], "product": entry["product"], "kind": entry["kind"], "path": entry["path"],
            "status": r.head.status, "login": login, "open": present and r.head.status == 200 and not login}


def _surface(ctx: CheckContext) -> dict:
    root = request(ctx, "GET", "/")
    page = page_facts(root.body, root.head.get("content-type"))
    token = secrets.token_hex(8)
    try:
        trace = request(ctx, "TRACE", "/", extra=f"X-Tcmscan-Trace: {token}\r\n")
        trace_status, echoed = trace.head.status, token.encode() in trace.body
    except CheckError as e:
        if e.reason != "protocol":
            raise
        trace_status, echoed = 0, False      # a server that hangs up on TRACE does not echo it
    svc = ctx.service
    assert svc is not None
    return {
        "url": f"{'https' if uses_tls(svc) else 'http'}://{ctx.address}:{svc.port}/", "status": root.head.status,
        "server": (root.head.get("server") or "")[:200], "title": page["title"],
        "directory_listing": bool(LISTING.match(page["title"])), "password_form": page["password_form"],
        "frame_protection": frame_protected(root.head),
        "csp": bool(root.head.get("content-security-policy")),
        "cookies": cookie_flags(root.head.get_all("set-cookie")),
        "trace_enabled": trace_status == 200 and echoed, "trace_status": trace_status,
    }


def run(ctx: CheckContext) -> list[Observation]:
    surface = _surface(ctx)
    table = ctx.knowledge["web_consoles"]
    entries = list(table["consoles"])[: max(0, int(table.get("max_requests", 20)) - 3)]
    not_found = request(ctx, "GET", f"/tcmscan-{secrets.token_hex(6)}/")
    found, tried, complete = [], 3, True
    for entry in entries:
        if ctx.remaining() < REQUEST_BUDGET:
            complete = False           # the facts so far stand; the rest were not asked
            break
        try:
            r = request(ctx, entry.get("method", "GET"), entry["path"])
        except CheckError as e:
            if e.reason != "protocol":
                raise
            continue                   # one path the server hung up on says nothing about the others
        finally:
            tried += 1
        facts = console_facts(entry, r, not_found)
        if facts:
            found.append(facts)
    return [ctx.observation("web-surface", surface),
            ctx.observation("consoles", {"tried": tried, "not_found_status": not_found.head.status,
                                         "complete": complete,
                                         "found": found})]
