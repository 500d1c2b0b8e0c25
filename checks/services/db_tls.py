"""services.db-tls: does a database speak TLS, and does it refuse cleartext?

PostgreSQL: one SSLRequest (the server answers S or N); on S a TLS handshake without certificate checks
(certificates are tls.scan's business) to read the version, then close. A second connection sends the
cleartext StartupMessage services.unauth sends (user/database postgres): an error 28000 whose text says
"no encryption" means pg_hba.conf has only hostssl lines for us (`plaintext_refused: true`); an
authentication request or AuthenticationOk means cleartext logins are taken (`false`).
MySQL/MariaDB: the server greeting's CLIENT_SSL capability (tls_offered). Whether TLS is required
(require_secure_transport) shows only after a login: MariaDB 10.11 answers a cleartext login 1045 "Access
denied" whether the user is unknown, the password wrong or the password right (measured, see
docs/checks/data.md), so without valid credentials nothing tells the two apart. Hence, only when the
credentials file has a `db` credential for the address (and its `port`, if set, is this one) and the greeting
offers TLS: one cleartext login (PyMySQL, TLS disabled, no SQL at all: no SET NAMES, no autocommit), and when
that is refused, the same login over TLS. Accepted in cleartext -> `plaintext_refused: false`; refused in
cleartext with 3159 (MySQL's ER_SECURE_TRANSPORT_REQUIRED), or refused in cleartext and accepted over TLS ->
`true`; refused both ways -> `null` (the credential is wrong: cannot tell). Without a credential: `null`.
SQL Server (1433 / ms-sql-s): one TDS PRELOGIN ([MS-TDS] 2.2.6.5) saying ENCRYPT_OFF, and the ENCRYPTION
option of the answer: ENCRYPT_NOT_SUP -> no TLS at all (tls_offered false: login and data in cleartext);
ENCRYPT_OFF -> TLS for the login packet only, the session then cleartext (offered, plaintext_refused false);
ENCRYPT_REQ (or ENCRYPT_ON to a client that asked for none) -> the server requires TLS (refused true). No
login, no TLS handshake (the certificate is tls.scan's business). A TDS 8.0 "strict" server (TLS before any
TDS) does not answer a cleartext PRELOGIN with one: not applicable.
Observation key `tls`: {service, product, tls_offered, tls_version, plaintext_refused, detail}.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from checks.services import _wire as wire
from checks.services.unauth import IO_TIMEOUT, run_probe, service_kind
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service
from scanner.sdk.bounded import BoundedSocket
from scanner.sdk.credentials import Credential

META = CheckMeta(
    id="services.db-tls",
    version="1.2",
    title_zh="数据库传输加密（TLS）",
    title_en="Database transport encryption (TLS)",
    granularity="service",
    services=("mysql", "postgresql", "ms-sql-s"),
    ports=(3306, 5432, 1433),
    timeout=25.0,
    description="PostgreSQL SSLRequest (+ handshake) and whether a cleartext StartupMessage is refused; "
                "MySQL/MariaDB CLIENT_SSL capability in the greeting; with a configured `db` credential, whether "
                "a cleartext login is refused (require_secure_transport); SQL Server PRELOGIN ENCRYPTION. No SQL.",
)


KINDS = ("mysql", "postgresql", "mssql")


def db_kind(service: Service | None) -> str:
    kind = service_kind(service)
    if not kind and service is not None and (service.name in ("ms-sql-s", "mssql") or service.port == 1433):
        kind = "mssql"
    return kind


def applies(asset: Asset, service: Service | None) -> bool:
    return db_kind(service) in KINDS


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


MAX_LOGIN_BYTES = 64 * 1024      # greeting, TLS handshake, auth switch, OK/ERR: a few KiB in all
ER_SECURE_TRANSPORT_REQUIRED = 3159   # MySQL 5.7+; MariaDB 10.11 answers 1045 instead (measured)


def _mysql_login(ctx: CheckContext, cred: Credential, *, tls: bool) -> tuple[bool, int, str]:
    """One login with the credential, TLS or not: (accepted, error code, TLS version). No SQL is sent: PyMySQL's
    SET NAMES after the login is skipped and autocommit left alone; COM_QUIT closes."""
    import pymysql  # noqa: PLC0415

    class _Quiet(pymysql.connections.Connection):
        def set_character_set(self, charset: str, collation: str | None = None) -> None:
            self.charset = charset        # the handshake already named it; no "SET NAMES" statement

    bounded = BoundedSocket(ctx.connect(timeout=IO_TIMEOUT), seconds=min(IO_TIMEOUT * 2, ctx.remaining()),
                            max_bytes=MAX_LOGIN_BYTES, what="MySQL login")
    conn = _Quiet(host=ctx.address, port=ctx.port or 3306, user=cred.user, password=cred.password or "",
                  defer_connect=True, connect_timeout=IO_TIMEOUT, read_timeout=IO_TIMEOUT,
                  write_timeout=IO_TIMEOUT, autocommit=None, ssl_disabled=not tls,
                  ssl=_tls_context() if tls else None)
    if tls:
        class _Upgrade:      # PyMySQL wraps its socket after the SSLRequest: through the context, still bounded
            def wrap_socket(self, _sock, server_hostname=None):  # noqa: ANN001, ANN202
                raw = ctx.wrap_tls(bounded.sock, _tls_context())
                return BoundedSocket(raw, seconds=max(0.5, bounded.deadline - time.monotonic()),
                                     max_bytes=MAX_LOGIN_BYTES, what="MySQL login over TLS")
        conn.ctx = _Upgrade()
    try:
        conn.connect(sock=bounded)
        version = conn._sock.sock.version() if tls and hasattr(conn._sock, "sock") else ""
        return True, 0, version or ""
    except pymysql.err.OperationalError as e:
        bounded.raise_if_exceeded()
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        if code in (1045, ER_SECURE_TRANSPORT_REQUIRED):
            return False, code, ""
        raise CheckError("protocol", f"MySQL login: error {code}: {str(e.args[-1])[:100]}") from None
    except pymysql.err.MySQLError as e:
        bounded.raise_if_exceeded()
        raise CheckError("protocol", f"MySQL login failed: {str(e)[:100]}") from None
    finally:
        try:
            conn.close()
        except Exception:   # a half-open connection may refuse COM_QUIT; the socket goes anyway
            bounded.close()


def mysql_transport_required(ctx: CheckContext, cred: Credential) -> tuple[bool | None, str, str]:
    """(plaintext_refused, TLS version of the TLS login, detail) from the configured credential's logins."""
    who = f"db credential {cred.user!r}"
    ok, code, _ = _mysql_login(ctx, cred, tls=False)
    if ok:
        return False, "", f"{who} logged in without TLS"
    if code == ER_SECURE_TRANSPORT_REQUIRED:
        return True, "", f"{who}: cleartext login refused with error 3159 (secure transport required)"
    ok, _, version = _mysql_login(ctx, cred, tls=True)
    if ok:
        return True, version, f"{who} refused in cleartext (error {code}) and accepted over TLS"
    return None, "", f"{who} refused with and without TLS (error {code}): cannot tell whether TLS is required"


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
    refused, tls_version = None, ""
    detail = "CLIENT_SSL in the greeting" if g["ssl"] else "greeting without CLIENT_SSL"
    cred = ctx.credential("db")
    if g["ssl"] and cred is not None and cred.user and cred.port in (None, ctx.port):
        refused, tls_version, said = mysql_transport_required(ctx, cred)
        detail += "; " + said
    elif g["ssl"]:
        detail += "; no db credential for this address: require_secure_transport not read"
    return {"product": product, "version": version, "tls_offered": g["ssl"], "tls_version": tls_version,
            "plaintext_refused": refused, "detail": detail}


def probe_mssql(ctx: CheckContext) -> dict[str, Any]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        sock.sendall(wire.tds_prelogin_request(0x00))
        a = wire.parse_tds_prelogin(wire.recv_until(sock, wire.tds_packet_complete,
                                                    time.monotonic() + min(IO_TIMEOUT, ctx.remaining()),
                                                    limit=wire.TDS_MAX_PACKET))
    finally:
        sock.close()
    name = a["encryption_name"] + (" with ENCRYPT_CLIENT_CERT" if a["client_cert"] else "")
    base = a["encryption"] & 0x7F
    if base == 0x02:
        offered, refused, what = False, False, "no TLS: login and data in cleartext"
    elif base == 0x00:
        offered, refused, what = True, False, "TLS for the login packet only, then cleartext"
    elif base in (0x01, 0x03):
        offered, refused, what = True, True, "TLS required for the whole session"
    else:
        raise CheckError("protocol", f"PRELOGIN ENCRYPTION value 0x{a['encryption']:02x} is not in MS-TDS 2.2.6.5")
    return {"product": "mssql", "version": a["version"], "tls_offered": offered, "tls_version": "",
            "plaintext_refused": refused,
            "detail": f"PRELOGIN answer to ENCRYPT_OFF: {name} (0x{a['encryption']:02x}): {what}"}


PROBES = {"postgresql": probe_postgresql, "mysql": probe_mysql, "mssql": probe_mssql}


def run(ctx: CheckContext) -> list[Observation]:
    kind = db_kind(ctx.service)
    if kind not in KINDS:
        raise CheckNotApplicable("not a MySQL/MariaDB, PostgreSQL or SQL Server service")
    result = run_probe(ctx, kind, PROBES[kind])
    return [ctx.observation("tls", {"service": kind, "product": result.pop("product", kind), **result})]
