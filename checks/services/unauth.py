"""services.unauth: does a database or cache answer WITHOUT authentication?

One unauthenticated request per service, read-only, nothing stored or changed:
- Redis: PING (+PONG vs -NOAUTH/-DENIED), then INFO server for redis_version when it answered.
- memcached: `version` (the text protocol has no authentication; SASL-only servers refuse it).
- MySQL/MariaDB: the server greeting only (version, auth plugin). Whether an empty root password is
  accepted is a login attempt and belongs to creds.default; requires_auth is null here.
- PostgreSQL: a StartupMessage for user/database `postgres`: AuthenticationOk means `trust`.
- MongoDB: OP_MSG `hello`, `buildInfo` (version) and `listDatabases nameOnly` (allowed = no auth).
Observation key `auth`: {service, requires_auth: true|false|null, version, detail}.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from checks.services import _wire as wire
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="services.unauth",
    version="1.0",
    title_zh="数据库与缓存服务未授权访问",
    title_en="Databases and caches answering without authentication",
    granularity="service",
    services=("redis", "mysql", "postgresql", "mongodb", "mongod", "memcache", "memcached"),
    ports=(6379, 3306, 5432, 27017, 11211),
    timeout=20.0,
    description="One unauthenticated, read-only request per service (PING/INFO, version, greeting, "
                "StartupMessage, hello/listDatabases); records whether the server required authentication.",
)
IO_TIMEOUT = 5.0
BY_NAME = {"redis": "redis", "mysql": "mysql", "postgresql": "postgresql", "mongodb": "mongodb",
           "mongod": "mongodb", "memcache": "memcached", "memcached": "memcached"}
BY_PORT = {6379: "redis", 3306: "mysql", 5432: "postgresql", 27017: "mongodb", 11211: "memcached"}


def service_kind(service: Service | None) -> str:
    if service is None:
        return ""
    return BY_NAME.get(service.name, "") or BY_PORT.get(service.port, "")


def applies(asset: Asset, service: Service | None) -> bool:
    return bool(service_kind(service))


def _exchange(ctx: CheckContext, request: bytes, done: Callable[[bytes], bool], sock: Any = None) -> bytes:
    own = sock is None
    sock = sock or ctx.connect(timeout=IO_TIMEOUT)
    try:
        if request:
            sock.sendall(request)
        return wire.recv_until(sock, done, time.monotonic() + min(IO_TIMEOUT, ctx.remaining()))
    finally:
        if own:
            sock.close()


def probe_redis(ctx: CheckContext) -> dict[str, Any]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        sock.sendall(wire.redis_command("PING"))
        kind, text = wire.parse_resp(wire.recv_until(sock, wire.resp_complete, time.monotonic() + IO_TIMEOUT))
        if kind == "ok" and text == "PONG":
            sock.sendall(wire.redis_command("INFO", "server"))
            kind2, info = wire.parse_resp(wire.recv_until(sock, wire.resp_complete,
                                                          time.monotonic() + IO_TIMEOUT))
            fields = wire.info_fields(info) if kind2 == "bulk" else {}
            return {"requires_auth": False, "version": fields.get("redis_version", ""),
                    "detail": "PING answered +PONG without AUTH"
                              + (f"; mode {fields['redis_mode']}" if "redis_mode" in fields else "")}
        if kind == "error" and text.startswith(("NOAUTH", "WRONGPASS")):
            return {"requires_auth": True, "version": "", "detail": text[:120]}
        if kind == "error" and text.startswith("DENIED"):
            # protected mode: no password set, but only loopback clients are served
            return {"requires_auth": True, "version": "", "detail": "protected mode: " + text[:100]}
        raise CheckError("protocol", f"unexpected Redis answer to PING: {kind} {text[:80]!r}")
    finally:
        sock.close()


def probe_memcached(ctx: CheckContext) -> dict[str, Any]:
    buf = _exchange(ctx, b"version\r\n", lambda b: b"\r\n" in b)
    version = wire.parse_memcached_version(buf)
    if version is not None:
        return {"requires_auth": False, "version": version, "detail": "text protocol 'version' answered"}
    line = buf.split(b"\r\n", 1)[0].decode("ascii", "replace")[:80]
    if line.startswith(("ERROR", "CLIENT_ERROR")):
        return {"requires_auth": True, "version": "", "detail": f"text protocol refused ({line}); SASL?"}
    raise CheckError("protocol", f"not a memcached answer: {line!r}")


def probe_mysql(ctx: CheckContext) -> dict[str, Any]:
    g = wire.parse_mysql_greeting(_exchange(ctx, b"", wire.mysql_packet_complete))
    if g["kind"] == "error":
        # e.g. 1130 "Host ... is not allowed to connect": nobody from here gets in, with or without password
        return {"requires_auth": True, "version": "", "product": "",
                "detail": f"refused before login: error {g['error_code']} {g['message'][:100]}"}
    product, version = wire.mariadb_version(g["version"])
    return {"requires_auth": None, "version": version, "product": product, "auth_plugin": g["auth_plugin"],
            "detail": "greeting only; logins (empty root password, defaults) are tried by creds.default"}


def probe_postgresql(ctx: CheckContext) -> dict[str, Any]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        sock.sendall(wire.pg_startup("postgres", "postgres"))
        r = wire.parse_pg_reply(wire.recv_until(sock, wire.pg_reply_done, time.monotonic() + IO_TIMEOUT))
        if r["auth"] == "ok":
            sock.sendall(b"X\0\0\0\4")        # Terminate: we only wanted to know
            return {"requires_auth": False, "version": r["server_version"],
                    "detail": "AuthenticationOk for user postgres without a password (trust)"}
        if r["auth"]:
            return {"requires_auth": True, "version": "", "detail": f"server asked for {r['auth']} authentication"}
        if r["error_code"] == "28000" and "pg_hba" in r["message"]:
            return {"requires_auth": True, "version": "", "detail": "refused by pg_hba.conf: " + r["message"][:100]}
        return {"requires_auth": None, "version": "",
                "detail": f"error {r['error_code']} before authentication: {r['message'][:100]}"}
    finally:
        sock.close()


def probe_mongodb(ctx: CheckContext) -> dict[str, Any]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        def cmd(rid: int, doc: dict[str, Any]) -> dict[str, Any]:
            sock.sendall(wire.mongo_op_msg(rid, {**doc, "$db": "admin"}))
            return wire.parse_mongo_reply(wire.recv_until(sock, wire.mongo_complete, time.monotonic() + IO_TIMEOUT))

        hello = cmd(1, {"hello": 1})
        build = cmd(2, {"buildInfo": 1})
        dbs = cmd(3, {"listDatabases": 1, "nameOnly": True})
    finally:
        sock.close()
    version = str(build.get("version", "") or "") if build.get("ok") == 1 else ""
    if dbs.get("ok") == 1:
        names = [str(d.get("name", "")) for d in dbs.get("databases") or [] if isinstance(d, dict)]
        return {"requires_auth": False, "version": version,
                "detail": f"listDatabases answered without authentication ({len(names)} databases)"}
    if dbs.get("code") in (13, 18) or "auth" in str(dbs.get("errmsg", "")).lower():
        return {"requires_auth": True, "version": version, "detail": str(dbs.get("errmsg", ""))[:120]}
    if not hello:
        raise CheckError("protocol", "MongoDB did not answer hello")
    raise CheckError("protocol", f"listDatabases failed: {str(dbs.get('errmsg', ''))[:100]}")


PROBES: dict[str, Callable[[CheckContext], dict[str, Any]]] = {
    "redis": probe_redis, "memcached": probe_memcached, "mysql": probe_mysql,
    "postgresql": probe_postgresql, "mongodb": probe_mongodb,
}


def run_probe(ctx: CheckContext, kind: str, probe: Callable[[CheckContext], dict[str, Any]]) -> dict[str, Any]:
    """`probe`'s result; its wire errors as the attempt's outcome: a timeout, or a port that does not speak `kind`
    (not applicable), or the connection dropped."""
    try:
        return probe(ctx)
    except wire.WireError as e:
        if "timeout" in str(e):
            raise CheckError("timeout", f"{kind}: {e}") from None
        raise CheckNotApplicable(f"port does not speak {kind}: {e}") from None
    except (ConnectionResetError, BrokenPipeError) as e:
        raise CheckError("connectivity", f"{kind}: connection dropped: {e}") from None


def run(ctx: CheckContext) -> list[Observation]:
    kind = service_kind(ctx.service)
    if not kind:
        raise CheckNotApplicable("not a database or cache service")
    result = run_probe(ctx, kind, PROBES[kind])
    data = {"service": kind, "product": result.pop("product", kind) or kind, **result}
    return [ctx.observation("auth", data)]
