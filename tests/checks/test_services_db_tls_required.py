"""services.db-tls on MySQL/MariaDB `require_secure_transport`, against real Debian mariadbd on 127.27.0.x:
.33 without TLS, .34 with TLS and require_secure_transport=ON, .35 with TLS but not required. Each has an
`audit` account, given to the scan as a `db` credential (credentials file, mode 0600).

What was measured here first (MariaDB 10.11): a cleartext login is answered 1045 "Access denied" whether the
user is unknown, the password wrong or the password RIGHT (require_secure_transport is checked after the
password, and answered with the same error), so it cannot be read without valid credentials; the mariadb
client sees the same. The check therefore logs in only with a configured credential, and runs no SQL (the
general query log shows only Connect and Quit). Findings through the CLI are asserted exactly."""

from __future__ import annotations

import re
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
from scanner.sdk.credentials import Credential, CredentialStore
from tests.checks.services_daemons import Procs, db_cert, mariadb_datadir
from tests.helpers import scan
from tests.loopback import wait_port

NO_TLS, REQUIRED, OPTIONAL = "127.27.0.33", "127.27.0.34", "127.27.0.35"
USER, PASSWORD = "audit", "Audit-Maria-27"
ROOT_PASSWORD = "Root-Maria-27"


def _mariadb(procs: Procs, root: Path, address: str, *, tls: bool, required: bool = False) -> None:
    data = mariadb_datadir(root, address)
    args = ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql", f"--bind-address={address}",
            "--port=3306", f"--socket={data}/mysqld.sock", "--skip-log-bin", f"--pid-file={data}/mysqld.pid",
            "--general-log=1", f"--general-log-file={data}/general.log"]
    if tls:
        key, cert = db_cert(data, "mysql")
        args += [f"--ssl-cert={cert}", f"--ssl-key={key}"]
    if required:
        args.append("--require-secure-transport=ON")
    procs.start(args)
    wait_port(address, 3306, timeout=60)
    subprocess.run(["mariadb", f"--socket={data}/mysqld.sock", "-u", "root", "-e",
                    f"ALTER USER root@localhost IDENTIFIED BY '{ROOT_PASSWORD}'; "
                    f"CREATE USER {USER}@'%' IDENTIFIED BY '{PASSWORD}'; FLUSH GENERAL LOGS"],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def servers() -> Iterator[Path]:
    missing = [b for b in ("mariadbd", "mariadb-install-db", "mariadb", "openssl") if not shutil.which(b)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install mariadb-server mariadb-client)")
    root = Path(tempfile.mkdtemp(prefix="tcmscan-db17x-"))
    root.chmod(0o755)
    procs = Procs()
    try:
        _mariadb(procs, root, NO_TLS, tls=False)
        _mariadb(procs, root, REQUIRED, tls=True, required=True)
        _mariadb(procs, root, OPTIONAL, tls=True)
        yield root
    finally:
        procs.stop()
        shutil.rmtree(root, ignore_errors=True)


def facts(address: str, cred: tuple[str, str] | None) -> dict:
    store = CredentialStore([Credential(match=address, type="db", user=cred[0], password=cred[1])] if cred else [])
    asset = Asset(address, services=[Service(3306, name="mysql")])
    r = execute_attempt(AttemptSpec("t", "services.db-tls", asset.to_dict(), 3306, timeout=25),
                        RunEnv(scope=[f"{address}/32"], credentials=store))
    assert (r.status, r.detail) == ("completed", ""), r.detail
    [o] = r.observations
    data = dict(o.data)
    assert data.pop("version").startswith("10.") and data.pop("product") == "mariadb"
    return data


def test_facts_with_and_without_the_credential(servers: Path) -> None:
    good, wrong = (USER, PASSWORD), (USER, "not-the-password")
    assert facts(NO_TLS, good) == {"service": "mysql", "tls_offered": False, "tls_version": "",
                                   "plaintext_refused": None, "detail": "greeting without CLIENT_SSL"}
    assert facts(REQUIRED, good) == {
        "service": "mysql", "tls_offered": True, "tls_version": "TLSv1.3", "plaintext_refused": True,
        "detail": "CLIENT_SSL in the greeting; db credential 'audit' refused in cleartext (error 1045) "
                  "and accepted over TLS"}
    assert facts(OPTIONAL, good) == {
        "service": "mysql", "tls_offered": True, "tls_version": "", "plaintext_refused": False,
        "detail": "CLIENT_SSL in the greeting; db credential 'audit' logged in without TLS"}
    for address in (REQUIRED, OPTIONAL):
        assert facts(address, None) == {
            "service": "mysql", "tls_offered": True, "tls_version": "", "plaintext_refused": None,
            "detail": "CLIENT_SSL in the greeting; no db credential for this address: "
                      "require_secure_transport not read"}
        assert facts(address, wrong) == {
            "service": "mysql", "tls_offered": True, "tls_version": "", "plaintext_refused": None,
            "detail": "CLIENT_SSL in the greeting; db credential 'audit' refused with and without TLS "
                      "(error 1045): cannot tell whether TLS is required"}


def _client(address: str, user: str, password: str, *tls: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", "-h", address, "-P", "3306", "-u", user, f"--password={password}",
                           "--connect-timeout=5", *tls, "-N", "-e", "SHOW STATUS LIKE 'Ssl_version'"],
                          capture_output=True, text=True, timeout=20)


def test_mariadb_client_agrees_and_the_refusal_needs_valid_credentials(servers: Path) -> None:
    plain, tls = ["--ssl=0"], ["--ssl", "--ssl-verify-server-cert=0"]
    # require_secure_transport: the right password in cleartext gets the same 1045 as an unknown user
    for user, password in ((USER, PASSWORD), (USER, "wrong"), ("no-such-user-5b1e", "wrong")):
        p = _client(REQUIRED, user, password, *plain)
        assert p.returncode == 1 and p.stderr.startswith("ERROR 1045 (28000): Access denied for user "), p.stderr
    p = _client(REQUIRED, USER, PASSWORD, *tls)
    assert p.returncode == 0 and p.stdout.split()[:2] == ["Ssl_version", "TLSv1.3"], p.stderr
    # TLS offered, not required: cleartext accepted (no Ssl_version value), TLS too
    p = _client(OPTIONAL, USER, PASSWORD, *plain)
    assert (p.returncode, p.stdout.split()) == (0, ["Ssl_version"]), p.stderr
    p = _client(OPTIONAL, USER, PASSWORD, *tls)
    assert p.returncode == 0 and p.stdout.split()[:2] == ["Ssl_version", "TLSv1.3"], p.stderr
    # no TLS at all
    p = _client(NO_TLS, USER, PASSWORD, *plain)
    assert (p.returncode, p.stdout.split()) == (0, ["Ssl_version"]), p.stderr


def test_no_sql_is_sent(servers: Path) -> None:
    """The check's logins leave only Connect/Quit in the general query log: no SET NAMES, no SELECT."""
    for address in (REQUIRED, OPTIONAL):
        log = servers / address / "general.log"
        before = log.read_text(errors="replace")
        facts(address, (USER, PASSWORD))
        time.sleep(0.5)
        new = log.read_text(errors="replace")[len(before):]
        # "<time>\t\t<thread id> <command>\t<argument>"; a refused login adds its "Access denied" text to Connect
        commands = re.findall(r"^[^\t\n]*\t\s*\d+ ([A-Za-z ]+?)\t", new, re.M)
        assert "Query" not in new and "Init DB" not in new, new
        assert commands and set(commands) <= {"Connect", "Quit"}, (address, new)


def test_scan_cli_findings(servers: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": "database", "class": "server", "zone": "server"}
        for a, n in ((NO_TLS, "my-plain"), (REQUIRED, "my-required"), (OPTIONAL, "my-optional"))]}))
    creds = tmp_path / "credentials.yaml"
    creds.write_text(yaml.safe_dump({"credentials": [
        {"match": "127.27.0.32/29", "type": "db", "user": USER, "password": PASSWORD}]}))
    creds.chmod(0o600)
    targets = [NO_TLS, REQUIRED, OPTIONAL]
    _sid, found = scan(targets, scope=["127.27.0.32/29"], db=tmp_path / "s.db", checks=["services.db-tls"],
                       inventory=str(inv), credentials=str(creds))
    assert {(f["address"], f["rule_id"], f["port"]) for f in found} == {
        (NO_TLS, "crypto.cleartext.database", 3306), (OPTIONAL, "crypto.cleartext.database-tls-optional", 3306)}
    # without the credential, whether TLS is required is unknown: only the server without TLS is reported
    _sid, found = scan(targets, scope=["127.27.0.32/29"], db=tmp_path / "s2.db", checks=["services.db-tls"],
                       inventory=str(inv))
    assert {(f["address"], f["rule_id"], f["port"]) for f in found} == {(NO_TLS, "crypto.cleartext.database", 3306)}
