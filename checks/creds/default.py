"""creds.default: does a service accept a vendor default login from a short, sourced list?

Pairs come from baselines/knowledge/default_credentials.yaml (per service, with sources). Each pair is
tried AT MOST ONCE, at most `max_per_service` pairs, stopping at the first accepted one: never brute force.
Intrusive (it logs in), so safe mode skips it on fragile/medical assets unless the inventory entry says
`default_credentials_allowed: true` (META.safe_mode_opt_in). The password never leaves this module:
observations carry the list entry id and the user name only.
Observation key `default-login`: {service, accepted, user, entry, tried, detail}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.creds import logins
from scanner.context import CheckContext
from scanner.errors import CheckError, CheckNotApplicable
from scanner.models import Asset, Observation, Service
from scanner.plugins import CheckMeta

META = CheckMeta(
    id="creds.default",
    version="1.0",
    title_zh="默认口令登录",
    title_en="Vendor default credentials",
    scope="service",
    services=("ssh", "telnet", "ftp", "http", "https", "http-alt", "https-alt", "mysql", "postgresql"),
    ports=(21, 22, 23, 80, 443, 8080, 8443, 3306, 5432),
    intrusive=True,
    safe_mode_opt_in="default_credentials_allowed",
    capabilities=("AUTH",),
    timeout=90.0,
    description="Tries each vendor default pair of the service once (list with sources), stops at the first "
                "accepted; records the list entry id, never the password.",
)
BY_NAME = {"ssh": "ssh", "telnet": "telnet", "ftp": "ftp", "http": "http-basic", "http-alt": "http-basic",
           "https": "https-basic", "https-alt": "https-basic", "mysql": "mysql", "postgresql": "postgresql"}
BY_PORT = {22: "ssh", 23: "telnet", 21: "ftp", 80: "http-basic", 8080: "http-basic", 443: "https-basic",
           8443: "https-basic", 3306: "mysql", 5432: "postgresql"}


def service_kind(service: Service | None) -> str:
    if service is None:
        return ""
    if service.tunnel == "ssl" and BY_NAME.get(service.name) == "http-basic":
        return "https-basic"
    return BY_NAME.get(service.name, "") or (BY_PORT.get(service.port, "") if service.name in ("", "unknown",
                                                                                             "tcpwrapped") else "")


def applies(asset: Asset, service: Service | None) -> bool:
    return bool(service_kind(service))


def pairs(ctx: CheckContext, kind: str) -> list[dict[str, Any]]:
    table = ctx.knowledge.get("default_credentials") or {}
    key = "http-basic" if kind == "https-basic" else kind
    items = list((table.get("services") or {}).get(key) or [])
    if not items:
        raise CheckError("unsupported", f"no default credentials listed for {key}")
    return items[:int(table.get("max_per_service", 3))]


def login_fn(ctx: CheckContext, kind: str) -> Callable[[str, str], tuple[bool, str]]:
    if kind in ("http-basic", "https-basic"):
        tls = kind == "https-basic"
        realm = logins.http_basic_challenge(ctx, tls)
        if not realm:
            # no HTTP Basic login at "/": nothing of ours to try (form logins are not tried yet)
            raise CheckNotApplicable("/ does not ask for HTTP Basic authentication")
        return lambda u, p: logins.http_basic_login(ctx, u, p, tls)
    fn = {"ssh": logins.ssh_login, "telnet": logins.telnet_login, "ftp": logins.ftp_login,
          "mysql": logins.mysql_login, "postgresql": logins.postgresql_login}[kind]
    return lambda u, p: fn(ctx, u, p)


def run(ctx: CheckContext) -> list[Observation]:
    kind = service_kind(ctx.service)
    if not kind:
        raise CheckNotApplicable("no default-credential list for this service")
    candidates = pairs(ctx, kind)
    attempt = login_fn(ctx, kind)
    tried, detail = 0, ""
    for c in candidates:
        try:
            accepted, detail = attempt(str(c["user"]), str(c.get("password", "")))
        except logins.Refused as e:
            detail = str(e)
            break
        tried += 1
        if accepted:
            return [ctx.observation("default-login", {"service": kind, "accepted": True, "user": str(c["user"]),
                                                      "entry": str(c["id"]), "tried": tried, "detail": detail})]
    return [ctx.observation("default-login", {"service": kind, "accepted": False, "user": "", "entry": "",
                                              "tried": tried, "detail": detail[:120]})]
