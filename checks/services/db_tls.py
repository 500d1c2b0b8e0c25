"""services.db-tls: does a database speak TLS, and does it refuse cleartext?

PostgreSQL: one SSLRequest (the server answers S or N); on S a TLS handshake without certificate checks
(certificates are tls.scan's business) to read the version, then close. A second connection sends the
cleartext StartupMessage services.unauth sends (user/database postgres): an error 28000 whose text says
"no encryption" means pg_hba.conf has only hostssl lines for us (`plaintext_refused: true`); an
authentication request or AuthenticationOk means cleartext logins are taken (`false`).
MySQL/MariaDB: the server greeting's CLIENT_SSL capability (tls_offered). Whether TLS is required
(require_secure_transport) can only be read after a login, which this check does not do:
`plaintext_refused: null`.
Observation key `tls`: {service, product, tls_offered, tls_version, plaintext_refused, detail}.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from checks.services import _wire as wire
from checks.services.unauth import IO_TIMEOUT, service_kind
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="services.db-tls",
    version="1.0",
    title_zh="数据库传输加密（TLS）",
    title_en="Database transport encryption (TLS)",
    granularity="service",
    services=("mysql", "postgresql"),
    ports=(3306, 5432),
    timeout=25.0,
    description="PostgreSQL SSLRequest (+ handshake) and whether a cleartext StartupMessage is refused; "
                "MySQL/MariaDB CLIENT_SSL capability in the greeting. No login.",
)


def applies(asset: Asset, service: Service | None) -> bool:
    return service_kind(service) in ("mysql", "postgresql")


def _tls_context() -> ssl.SSLContext:
    tctx = ssl.create_default_context()
    tctx.check_hostname = False
    tctx.verify_mode = ssl.CERT_NONE      # "is TLS offered", not "is the certificate good" (tls.scan)
    return tctx


def probe_postgresql(ctx: CheckContext) -> dict[str, Any]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    version = ""
    try:
        sock.sendall(wire.PG_SSL_REQUEST)
        offered = wire.parse_pg_ssl_answer(wire.recv_until(sock, lambda b: len(b) >= 1,
                                                           time.monotonic() + IO_TIMEOUT, limit=1))
        if offered:
            sock.settimeout(min(IO_TIMEOUT, ctx.remaining()))
            try:
                version = ctx.wrap_tls(sock, _tls_context()).version() or ""
            except (ssl.SSLError, OSError) as e:
                raise CheckError("protocol", f"PostgreSQL said S to SSLRequest but the TLS handshake failed: {e}"
                                 ) from None
    finally:
        sock.close()
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        sock.sendall(wire.pg_startup("postgres", "postgres"))
        r = wire.parse_pg_reply(wire.recv_until(sock, wire.pg_reply_done, time.monotonic() + IO_TIMEOUT))
        if r["auth"] == "ok":
            sock.sendall(b"X\0\0\0\4")        # Terminate
    finally:
        sock.close()
    if r["auth"]:
        refused, detail = False, f"cleartext StartupMessage answered with {r['auth']} authentication"
    elif r["error_code"] == "28000" and "no encryption" in r["message"]:
        refused, detail = True, "cleartext refused by pg_hba.conf: " + r["message"][:100]
    else:
        refused, detail = None, f"cleartext StartupMessage: error {r['error_code']} {r['message'][:100]}"
    return {"tls_offered": offered, "tls_version": version, "plaintext_refused": refused, "detail": detail,
            "version": r["server_version"]}


def probe_mysql(ctx: CheckContext) -> dict[str, Any]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        g = wire.parse_mysql_greeting(wire.recv_until(sock, wire.mysql_packet_complete,
                                                      time.monotonic() + IO_TIMEOUT))
    finally:
        sock.close()
    if g["kind"] == "error":
        raise CheckNotApplicable(f"refused before the greeting: error {g['error_code']} {g['message'][:80]}")
    if g["ssl"] is None:
        raise CheckError("protocol", "MySQL greeting too short to carry capability flags")
    product, version = wire.mariadb_version(g["version"])
    return {"product": product, "version": version, "tls_offered": g["ssl"], "tls_version": "",
            "plaintext_refused": None,
            "detail": "CLIENT_SSL in the greeting" if g["ssl"] else "greeting without CLIENT_SSL"}


def run(ctx: CheckContext) -> list[Observation]:
    kind = service_kind(ctx.service)
    if kind not in ("mysql", "postgresql"):
        raise CheckNotApplicable("not a MySQL/MariaDB or PostgreSQL service")
    try:
        result = probe_postgresql(ctx) if kind == "postgresql" else probe_mysql(ctx)
    except wire.WireError as e:
        if "timeout" in str(e):
            raise CheckError("timeout", f"{kind}: {e}") from None
        raise CheckNotApplicable(f"port does not speak {kind}: {e}") from None
    except (ConnectionResetError, BrokenPipeError) as e:
        raise CheckError("connectivity", f"{kind}: connection dropped: {e}") from None
    return [ctx.observation("tls", {"service": kind, "product": result.pop("product", kind), **result})]
