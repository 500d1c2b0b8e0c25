"""services.unauth, services.ftp-anonymous and creds.default end to end: real daemons on loopback addresses of
their own, one `tcmscan scan` through the CLI into a real SQLite file, exact findings and observations.

127.0.5.1  ordinary server: redis without / with requirepass, memcached, PostgreSQL trust,
           FTP anonymous / FTP with admin:admin, HTTP Basic admin:admin
127.0.5.2  fragile (inventory), no permission: anonymous FTP on 21 and HTTP Basic admin:admin on 80
127.0.5.3  fragile, default_credentials_allowed: true: the same two services
127.0.5.4  PostgreSQL with scram-sha-256, user postgres / password postgres
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.checks import services_daemons as d
from tests.helpers import observations, scan, tcmscan

A, F, P, B = "127.0.5.1", "127.0.5.2", "127.0.5.3", "127.0.5.4"
# PostgreSQL on its own port: nmap --version-light does not name it elsewhere (nor would a hospital's scan)
REDIS_OPEN, REDIS_AUTH, MEMCACHED, PG_TRUST, PG_SCRAM = 16379, 16380, 21211, 5432, 5432
MINE = ("hardening.unauthenticated-service", "hardening.anonymous-ftp", "accounts.default-credentials",
        "hardening.vulnerable-version", "medical.device.default-login")
FTP_ANON, FTP_USERS, HTTP_BASIC = 12121, 12122, 18080


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svc")
    procs = d.Procs()
    servers: list = []
    pg_dirs: list[Path] = []
    try:
        d.redis(procs, A, REDIS_OPEN)
        d.redis(procs, A, REDIS_AUTH, password="S3cret-not-default")
        d.memcached(procs, A, MEMCACHED)
        pg_dirs.append(d.postgres(procs, A, PG_TRUST, method="trust"))
        pg_dirs.append(d.postgres(procs, B, PG_SCRAM, method="scram-sha-256", password="postgres"))
        servers += [d.FTP(tmp, A, FTP_ANON, anonymous=True), d.FTP(tmp, A, FTP_USERS, anonymous=False,
                                                                  users={"admin": "admin"}),
                    d.BasicHTTP(A, HTTP_BASIC, "admin", "admin")]
        for host in (F, P):
            servers += [d.FTP(tmp / host, host, 21, anonymous=True), d.BasicHTTP(host, 80, "admin", "admin")]
        inv = tmp / "inventory.yaml"
        inv.write_text(yaml.safe_dump({"assets": [
            {"address": F, "name": "fragile-no", "role": "infusion-pump", "fragile": True},
            {"address": P, "name": "fragile-yes", "role": "infusion-pump", "fragile": True,
             "default_credentials_allowed": True}]}))
        db = tmp / "scan.db"
        ports = [REDIS_OPEN, REDIS_AUTH, MEMCACHED, FTP_ANON, FTP_USERS, HTTP_BASIC]
        extra = [x for p in ports for x in ("--ports", str(p))]
        scan_id, found = scan([A, F, P, B], scope=["127.0.5.0/24"], db=db, inventory=str(inv),
                              checks=["services", "creds"], extra=extra)
        yield {"db": db, "id": scan_id, "findings": found, "obs": observations(db, scan_id),
               "http_logins": servers[2].logins}
    finally:
        for s in servers:
            s.close()
        procs.stop()
        for p in pg_dirs:
            shutil.rmtree(p, ignore_errors=True)


def _triples(found):
    return {(f["address"], f["rule_id"], f["port"]) for f in found if f["rule_id"] in MINE}


def test_findings_exact(result):
    assert _triples(result["findings"]) == {
        (A, "hardening.unauthenticated-service", REDIS_OPEN),
        (A, "hardening.unauthenticated-service", MEMCACHED),
        (A, "hardening.unauthenticated-service", PG_TRUST),
        (A, "hardening.anonymous-ftp", FTP_ANON),
        (A, "accounts.default-credentials", FTP_USERS),
        (A, "accounts.default-credentials", HTTP_BASIC),
        (B, "accounts.default-credentials", PG_SCRAM),
        (A, "accounts.default-credentials", PG_TRUST),     # trust accepts any password: postgres/postgres too
        (P, "hardening.anonymous-ftp", 21),
        # on a medical device the same fact is the device rule (one finding, the device's clause)
        (P, "medical.device.default-login", 80),
    }


def test_unauth_observations(result):
    redis_version = re.search(r"v=(\S+)", subprocess.run(["redis-server", "--version"], capture_output=True,
                                                         text=True).stdout).group(1)
    memcached_version = subprocess.run(["memcached", "-V"], capture_output=True, text=True).stdout.split()[1]
    got = {(o["address"], o["port"]): (o["data"]["service"], o["data"]["requires_auth"], o["data"]["version"])
           for o in result["obs"] if o["check_id"] == "services.unauth"}
    assert got[(A, REDIS_OPEN)] == ("redis", False, redis_version)
    assert got[(A, REDIS_AUTH)] == ("redis", True, "")
    assert got[(A, MEMCACHED)] == ("memcached", False, memcached_version)
    assert got[(A, PG_TRUST)][:2] == ("postgresql", False) and got[(A, PG_TRUST)][2].startswith("15.")
    assert got[(B, PG_SCRAM)] == ("postgresql", True, "")
    assert set(got) == {(A, REDIS_OPEN), (A, REDIS_AUTH), (A, MEMCACHED), (A, PG_TRUST), (B, PG_SCRAM)}


def test_default_login_observations_never_hold_the_password(result):
    got = {(o["address"], o["port"]): o["data"] for o in result["obs"] if o["check_id"] == "creds.default"}
    assert got[(A, FTP_USERS)] == {"service": "ftp", "accepted": True, "user": "admin", "entry": "ftp-admin-admin",
                                   "tried": 1, "detail": got[(A, FTP_USERS)]["detail"]}
    assert got[(A, HTTP_BASIC)]["entry"] == "http-admin-admin" and got[(A, HTTP_BASIC)]["tried"] == 1
    assert got[(B, PG_SCRAM)]["entry"] == "pg-postgres-postgres"
    assert got[(A, FTP_ANON)] == {"service": "ftp", "accepted": False, "user": "", "entry": "", "tried": 2,
                                  "detail": got[(A, FTP_ANON)]["detail"]}
    dump = Path(result["db"]).read_bytes()
    # the one pair that worked over HTTP went out once, and no password is in the database
    assert result["http_logins"].count("Basic YWRtaW46YWRtaW4=") == 1
    assert b"YWRtaW46YWRtaW4=" not in dump and b"S3cret-not-default" not in dump


def test_safe_mode_needs_the_inventory_permission(result):
    p = tcmscan("attempts", result["id"], "--format", "json", db=result["db"], check=True)
    import json
    rows = {(a["address"], a["check_id"], a["port"]): (a["status"], a["reason"]) for a in json.loads(p.stdout)}
    assert rows[(F, "creds.default", 21)] == ("skipped", "safe-mode")
    assert rows[(F, "creds.default", 80)] == ("skipped", "safe-mode")
    assert rows[(F, "services.ftp-anonymous", 21)] == ("skipped", "safe-mode")
    assert rows[(P, "creds.default", 80)] == ("completed", "")
    assert rows[(P, "services.ftp-anonymous", 21)] == ("completed", "")
    assert rows[(A, "services.ftp-anonymous", FTP_USERS)] == ("completed", "")
