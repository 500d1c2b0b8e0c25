"""services.db-tls (and the password-less logins services.unauth / creds.default already report) against real
Debian databases on 127.17.0.x: a PostgreSQL cluster with a `trust` line and no TLS, a twin with TLS and only
hostssl scram lines; MariaDB with an empty root password and no TLS, a twin with TLS and
require_secure_transport. Compared with psql and the mariadb client; the CLI scan's findings exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.checks.services_daemons import Procs, _pg_bin, db_cert, mariadb_datadir
from tests.helpers import scan
from tests.loopback import wait_port

PG_TRUST, PG_TLS, MY_OPEN, MY_TLS = "127.17.0.31", "127.17.0.32", "127.17.0.33", "127.17.0.34"
MY_PASSWORD = "Twin-Maria-Secret"


def _postgres(procs: Procs, root: Path, address: str, *, tls: bool) -> None:
    data = root / address
    data.mkdir(mode=0o700)
    shutil.chown(data, "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "-A", "trust" if not tls else "scram-sha-256", "--pwfile", str(root / "pw"), "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    hba = data / "pg_hba.conf"
    if tls:
        key, cert = db_cert(data, "postgres")
        hba.write_text("local all postgres peer\nhostssl all all 127.0.0.0/8 scram-sha-256\n")
        extra = ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]
    else:
        # the plant of the issue: a trust line for the user network (here: loopback)
        hba.write_text("local all postgres peer\nhost all all 127.0.0.0/8 trust\n")
        extra = []
    procs.start(["runuser", "-u", "postgres", "--", _pg_bin("postgres"), "-D", str(data), "-h", address, "-p", "5432",
                 "-k", str(data), "-c", "fsync=off", *extra])
    wait_port(address, 5432, timeout=30)


def _mariadb(procs: Procs, root: Path, address: str, *, tls: bool) -> None:
    data = mariadb_datadir(root, address)
    args = ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql", f"--bind-address={address}",
            "--port=3306", f"--socket={data}/mysqld.sock", "--skip-name-resolve=0", "--skip-log-bin",
            f"--pid-file={data}/mysqld.pid"]
    if tls:
        key, cert = db_cert(root, "mysql")
        args += [f"--ssl-cert={cert}", f"--ssl-key={key}", "--require-secure-transport=ON"]
    procs.start(args)
    wait_port(address, 3306, timeout=60)
    if tls:     # the hardened twin: root gets a password (install-db leaves it empty), over the local socket
        subprocess.run(["mariadb", f"--socket={data}/mysqld.sock", "-u", "root", "-e",
                        f"ALTER USER root@localhost IDENTIFIED BY '{MY_PASSWORD}'"], check=True, capture_output=True,
                       timeout=30)


@pytest.fixture(scope="module")
def databases() -> Iterator[Path]:
    missing = [b for b in ("mariadbd", "mariadb-install-db", "mariadb", "psql", "openssl") if not shutil.which(b)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install postgresql mariadb-server mariadb-client)")
    root = Path(tempfile.mkdtemp(prefix="tcmscan-db17-"))
    root.chmod(0o755)
    (root / "pw").write_text("Twin-Postgres-Secret\n")
    shutil.chown(root / "pw", "postgres")
    procs = Procs()
    try:
        _postgres(procs, root, PG_TRUST, tls=False)
        _postgres(procs, root, PG_TLS, tls=True)
        _mariadb(procs, root, MY_OPEN, tls=False)
        _mariadb(procs, root, MY_TLS, tls=True)
        yield root
    finally:
        procs.stop()
        shutil.rmtree(root, ignore_errors=True)


def attempt(address: str, port: int, name: str, check: str = "services.db-tls"):
    asset = Asset(address, services=[Service(port, name=name)])
    spec = AttemptSpec("t", check, asset.to_dict(), port, timeout=25)
    return execute_attempt(spec, RunEnv(scope=[f"{address}/32"]))


def tls_facts(address: str, port: int, name: str) -> dict:
    r = attempt(address, port, name)
    assert (r.status, r.detail) == ("completed", ""), r.detail
    [o] = r.observations
    assert o.key == "tls"
    return dict(o.data)


def test_postgresql_facts(databases: Path) -> None:
    trust = tls_facts(PG_TRUST, 5432, "postgresql")
    assert trust.pop("version").split(".")[0] == Path(_pg_bin("postgres")).parts[-3]   # ParameterStatus
    assert trust == {
        "service": "postgresql", "product": "postgresql", "tls_offered": False, "tls_version": "",
        "plaintext_refused": False, "detail": "cleartext StartupMessage answered with ok authentication"}
    twin = tls_facts(PG_TLS, 5432, "postgresql")
    assert twin.pop("detail").startswith('cleartext refused by pg_hba.conf: no pg_hba.conf entry for host "')
    assert twin == {"service": "postgresql", "product": "postgresql", "tls_offered": True,
                    "tls_version": "TLSv1.3", "plaintext_refused": True, "version": ""}


def test_mariadb_facts(databases: Path) -> None:
    open_, twin = tls_facts(MY_OPEN, 3306, "mysql"), tls_facts(MY_TLS, 3306, "mysql")
    assert open_.pop("version").startswith("10.") and twin.pop("version").startswith("10.")
    assert open_ == {"service": "mysql", "product": "mariadb", "tls_offered": False, "tls_version": "",
                     "plaintext_refused": None, "detail": "greeting without CLIENT_SSL"}
    assert twin == {"service": "mysql", "product": "mariadb", "tls_offered": True, "tls_version": "",
                    "plaintext_refused": None, "detail": "CLIENT_SSL in the greeting; no db credential for this "
                                                         "address: require_secure_transport not read"}


def _psql(address: str, sslmode: str) -> str:
    p = subprocess.run(["psql", f"host={address} port=5432 user=postgres dbname=postgres sslmode={sslmode} "
                                "connect_timeout=5", "-w", "-Atc", "show ssl"],
                       capture_output=True, text=True, timeout=20, env={**os.environ, "PGPASSWORD": ""})
    return (p.stdout + p.stderr).strip()


def test_psql_agrees(databases: Path) -> None:
    # trust cluster: no TLS (what we saw as tls_offered false), cleartext login without password (trust)
    assert "server does not support SSL, but SSL was required" in _psql(PG_TRUST, "require")
    assert _psql(PG_TRUST, "disable") == "off"
    # twin: TLS taken, then a password is wanted; cleartext refused by pg_hba ("no encryption")
    assert "no password supplied" in _psql(PG_TLS, "require")
    assert "no encryption" in _psql(PG_TLS, "disable")


def _mariadb_client(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", "-h", address, "-P", "3306", "-u", "root", "--connect-timeout=5", *args,
                           "-N", "-e", "SHOW STATUS LIKE 'Ssl_version'"], capture_output=True, text=True,
                          timeout=20)


def test_mariadb_client_agrees(databases: Path) -> None:
    # open server: root without password; even when the client asks for TLS the session has none (no CLIENT_SSL)
    for args in (["--skip-ssl"], ["--ssl", "--ssl-verify-server-cert=0"]):
        p = _mariadb_client(MY_OPEN, *args)
        assert (p.returncode, p.stdout.split()) == (0, ["Ssl_version"]), p.stderr
    # twin: the session is TLS when asked for; without TLS the password is refused (require_secure_transport)
    p = _mariadb_client(MY_TLS, f"--password={MY_PASSWORD}", "--ssl", "--ssl-verify-server-cert=0")
    assert p.returncode == 0 and p.stdout.split()[0] == "Ssl_version" and p.stdout.split()[1].startswith("TLSv1")
    p = _mariadb_client(MY_TLS, f"--password={MY_PASSWORD}", "--skip-ssl")
    assert p.returncode != 0 and "ERROR 1045" in p.stderr, p.stderr


def test_scan_cli_findings(databases: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": "database", "class": "server", "zone": "server"}
        for a, n in ((PG_TRUST, "pg-trust"), (PG_TLS, "pg-tls"), (MY_OPEN, "my-open"), (MY_TLS, "my-tls"))]}))
    start = time.monotonic()
    _sid, found = scan([PG_TRUST, PG_TLS, MY_OPEN, MY_TLS], scope=["127.17.0.0/24"], db=tmp_path / "s.db",
                       checks=["services.db-tls", "services.unauth", "creds.default"], inventory=str(inv))
    assert time.monotonic() - start < 300
    assert {(f["address"], f["rule_id"], f["port"]) for f in found} == {
        (PG_TRUST, "crypto.cleartext.database", 5432), (PG_TRUST, "hardening.unauthenticated-service", 5432),
        (PG_TRUST, "accounts.default-credentials", 5432),      # trust takes postgres/postgres as well
        (MY_OPEN, "crypto.cleartext.database", 3306), (MY_OPEN, "accounts.default-credentials", 3306)}
    # the password-less logins come from the existing checks, unchanged (creds.default's list entries)
    assert {(f["address"], f["evidence"]["entry"]) for f in found if f["rule_id"] == "accounts.default-credentials"} == {
        (PG_TRUST, "pg-postgres-postgres"), (MY_OPEN, "mysql-root-empty")}


def test_misbehaving_peers_bounded() -> None:
    """Silence, a TLS promise broken, garbage and a flood on the PostgreSQL port: a reason, within the bounds."""
    from tests.loopback import Scripted

    def talk(mode: str):
        def run(conn, _n, _first):
            if mode == "silent":
                time.sleep(8)
            elif mode == "s-then-garbage":
                conn.recv(8)                             # the SSLRequest
                conn.sendall(b"S")
                conn.recv(4096)                          # the ClientHello
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            elif mode == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            elif mode == "flood":
                end = time.monotonic() + 6
                while time.monotonic() < end:
                    conn.sendall(b"N" * 65536)
        return run

    cases = {
        "silent": ("error", "timeout", "postgresql: timeout waiting for the reply"),
        "s-then-garbage": ("error", "protocol", "PostgreSQL said S to SSLRequest but the TLS handshake failed: "),
        "garbage": ("not_applicable", "", "port does not speak postgresql: reply larger than 1 bytes"),
        "flood": ("not_applicable", "", "port does not speak postgresql: reply larger than 1 bytes"),
    }
    for i, (mode, (status, reason, detail)) in enumerate(cases.items()):
        address = f"127.17.0.{90 + i}"
        peer = Scripted(talk(mode), address, 5432, timeout=10)
        try:
            start = time.monotonic()
            r = attempt(address, 5432, "postgresql")
            took = time.monotonic() - start
        finally:
            peer.close()
        assert (r.status, r.reason, r.detail[:len(detail)]) == (status, reason, detail), (mode, r.detail)
        assert r.observations == [] and took < 8, (mode, took)
