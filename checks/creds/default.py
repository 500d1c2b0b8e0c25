"""creds.default: does a service accept a vendor default login from a short, sourced list?

Pairs come from baselines/knowledge/default_credentials.yaml (per service, with sources). Each pair is
tried AT MOST ONCE, at most `max_per_service` pairs, stopping at the first accepted one: never brute force.
Intrusive (it logs in), so safe mode skips it on fragile/medical assets unless the inventory entry says
`default_credentials_allowed: true` (META.safe_mode_opt_in). The password never leaves this module:
observations carry the list entry id and the user name only.
Web consoles: one GET / tells an HTTP Basic challenge from an HTML login form (checks/creds/_forms.py: the
form is parsed, its hidden fields/CSRF token and session cookie are sent back with each pair, and success is
decided conservatively and explained in `decision`). When / shows neither, the admin consoles of
baselines/knowledge/web_consoles.yaml that name a credential list (Tomcat manager, host-manager) are asked with
a plain GET; the first answering with a Basic challenge gets that list's pairs (`page` says which).
Observation key `default-login`: {service, accepted, user, entry, tried, detail} and, for forms,
{decision, page, form: {action, method, user_field, password_field, hidden}} (field names, never values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.creds import _forms as forms
from checks.creds import _logins as logins
from checks.creds import _web as web
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="creds.default",
    version="1.0",
    title_zh="默认口令登录",
    title_en="Vendor default credentials",
    granularity="service",
    services=("ssh", "telnet", "ftp", "http", "https", "http-alt", "https-alt", "http-proxy", "mysql", "postgresql",
              "vnc", "vnc-1"),
    ports=(21, 22, 23, 80, 443, 8080, 8443, 3306, 5432, 5900, 5901),
    intrusive=True,
    safe_mode_opt_in="default_credentials_allowed",
    capabilities=("AUTH",),
    timeout=90.0,
    description="Tries each vendor default pair of the service once (list with sources), stops at the first "
                "accepted; records the list entry id, never the password.",
)
# web services are "http"/"https" until GET / shows how they log in (http-basic, http-form, https-...)
# http-proxy: nmap's name for 8080 when -sV cannot tell (Tomcat 10 sends no Server header), as http.probe takes it
BY_NAME = {"ssh": "ssh", "telnet": "telnet", "ftp": "ftp", "http": "http", "http-alt": "http", "http-proxy": "http",
           "https": "https", "https-alt": "https", "mysql": "mysql", "postgresql": "postgresql", "vnc": "vnc",
           "vnc-1": "vnc"}
BY_PORT = {22: "ssh", 23: "telnet", 21: "ftp", 80: "http", 8080: "http", 443: "https", 8443: "https",
           3306: "mysql", 5432: "postgresql", 5900: "vnc", 5901: "vnc"}
Attempt = Callable[[str, str], tuple[bool, str, str]]    # (user, password) -> (accepted, detail, decision)


def service_kind(service: Service | None) -> str:
    if service is None:
        return ""
    if service.tunnel == "ssl" and BY_NAME.get(service.name) == "http":
        return "https"
    return BY_NAME.get(service.name, "") or (BY_PORT.get(service.port, "") if service.name in ("", "unknown",
                                                                                             "tcpwrapped") else "")


def applies(asset: Asset, service: Service | None) -> bool:
    return bool(service_kind(service))


def pairs(ctx: CheckContext, kind: str) -> list[dict[str, Any]]:
    table = ctx.knowledge.get("default_credentials") or {}
    key = kind.replace("https-", "http-")
    items = list((table.get("services") or {}).get(key) or [])
    if not items:
        raise CheckError("unsupported", f"no default credentials listed for {key}")
    return items[:int(table.get("max_per_service", 3))]


def web_login(ctx: CheckContext, tls: bool) -> tuple[str, list[dict[str, Any]], Attempt, dict[str, Any]]:
    """One GET / decides how this console logs in: an HTTP Basic challenge, or an HTML login form (found on /
    or after at most two same-origin redirects). Returns (kind, pairs, attempt function, extra facts)."""
    origin = web.Origin(ctx.address, ctx.port or (443 if tls else 80), tls, (ctx.asset.name or "",))
    first = web.request(ctx, origin, "GET", "/")
    realm = logins.basic_realm(first)
    if realm:
        kind = "https-basic" if tls else "http-basic"
        # entries with a `match` (a product's own default, e.g. Orthanc's) only where the realm names it
        table = ctx.knowledge.get("default_credentials") or {}
        entries = list((table.get("services") or {}).get("http-basic") or [])
        if not entries:
            raise CheckError("unsupported", "no default credentials listed for http-basic")
        candidates = forms.choose(entries, realm, int(table.get("max_per_service", 3)))
        return kind, candidates, lambda u, p: (*logins.http_basic_login(ctx, origin, u, p), ""), {}
    page = forms.find(ctx, origin, first)
    if page is None:
        console = console_login(ctx, origin)
        if console is not None:
            return console
        raise CheckNotApplicable(f"/ asks for neither HTTP Basic authentication nor a login form "
                                 f"(HTTP {first.status}{', page cut at 256 KiB' if first.truncated else ''}), "
                                 f"and no listed admin console answers with a Basic challenge")
    table = ctx.knowledge.get("default_credentials") or {}
    entries = list((table.get("services") or {}).get("http-form") or [])
    if not entries:
        raise CheckError("unsupported", "no default credentials listed for http-form")
    candidates = forms.choose(entries, page.identity, int(table.get("max_per_service", 3)))
    current: list[forms.LoginPage | None] = [page]

    def attempt(user: str, password: str) -> tuple[bool, str, str]:
        login = current[0]
        if login is None:
            # a fresh page (new CSRF token and session) for every pair: tokens are often single-use
            try:
                login = forms.find(ctx, origin, path=page.path)
            except CheckNotApplicable as e:
                raise logins.Refused(f"login page changed after a try ({e}): stopped") from None
            if login is None:
                raise logins.Refused(f"login form no longer shown at {page.path[:80]}: stopped")
        current[0] = None
        return forms.attempt(ctx, origin, login, user, password)

    facts = {"form": forms.form_facts(page.form, page.action), "page": page.path[:200]}
    return ("https-form" if tls else "http-form"), candidates, attempt, facts


def console_login(ctx: CheckContext, origin: web.Origin
                  ) -> tuple[str, list[dict[str, Any]], Attempt, dict[str, Any]] | None:
    """An admin console of baselines/knowledge/web_consoles.yaml whose entry names a default-credential list
    (e.g. the Tomcat manager): the first one whose path answers a plain GET with an HTTP Basic challenge is
    logged into with that list, within the same per-service budget. None when none does."""
    table = ctx.knowledge.get("default_credentials") or {}
    for entry in (ctx.knowledge.get("web_consoles") or {}).get("consoles") or []:
        key = entry.get("credentials")
        if not key or entry.get("method", "GET") != "GET":
            continue
        if not logins.basic_realm(web.request(ctx, origin, "GET", entry["path"])):
            continue
        items = list((table.get("services") or {}).get(key) or [])[:int(table.get("max_per_service", 3))]
        if not items:
            raise CheckError("unsupported", f"no default credentials listed for {key}")
        kind = "https-basic" if origin.tls else "http-basic"
        path = str(entry["path"])
        return (kind, items, lambda u, p, path=path: (*logins.http_basic_login(ctx, origin, u, p, path), ""),
                {"page": path})
    return None


def login_fn(ctx: CheckContext, kind: str) -> tuple[str, list[dict[str, Any]], Attempt, dict[str, Any]]:
    if kind in ("http", "https"):
        return web_login(ctx, kind == "https")
    if kind == "vnc":
        types = logins.vnc_offers_password(ctx)
        if 2 not in types:   # None (vnc.security's finding), VeNCrypt/TLS or vendor schemes: no VNC password here
            raise CheckNotApplicable(f"the VNC server offers no classic VNC authentication (security types {types})")
    fn = {"ssh": logins.ssh_login, "telnet": logins.telnet_login, "ftp": logins.ftp_login,
          "mysql": logins.mysql_login, "postgresql": logins.postgresql_login, "vnc": logins.vnc_login}[kind]
    return kind, pairs(ctx, kind), lambda u, p: (*fn(ctx, u, p), ""), {}


def run(ctx: CheckContext) -> list[Observation]:
    kind = service_kind(ctx.service)
    if not kind:
        raise CheckNotApplicable("no default-credential list for this service")
    kind, candidates, attempt, facts = login_fn(ctx, kind)
    form = kind.endswith("-form") or "page" in facts     # form logins and console logins say where
    tried, detail, decisions = 0, "", []
    for c in candidates:
        try:
            accepted, detail, decision = attempt(str(c["user"]), str(c.get("password", "")))
        except logins.Refused as e:
            detail = decision = str(e)
            decisions.append(decision)
            break
        tried += 1
        if accepted:
            data = {"service": kind, "accepted": True, "user": str(c["user"]), "entry": str(c["id"]),
                    "tried": tried, "detail": detail}
            return [ctx.observation("default-login", {**data, **({"decision": decision, **facts} if form else {})})]
        decisions.append(decision)
    data = {"service": kind, "accepted": False, "user": "", "entry": "", "tried": tried, "detail": detail[:120]}
    # every distinct answer, in order: "refused" and "not counted" explain themselves side by side
    summary = " | ".join(dict.fromkeys(x[:300] for x in decisions))
    return [ctx.observation("default-login", {**data, **({"decision": summary, **facts} if form else {})})]
