"""Two scans writing one database at the same time both complete, with every row of each (tcmscan waits for the
other's short transactions instead of refusing or failing mid-scan): into a new file (both create the schema
at once) and into one with scans in it; a scan outwaits another process's long write transaction. Real
services on loopback addresses of their own, real nmap, real SQLite."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time

import pytest

from scanner.store import SCHEMA_VERSION
from tests.crash import finding_facts, integrity, rows
from tests.helpers import ROOT, tcmscan
from tests.loopback import Listener, wildcard_ports

SERVICES = ((23, b"\xff\xfb\x01\xff\xfb\x03login: "), (21, b"220 archive FTP ready\r\n"), (873, None), (6379, None))


@pytest.fixture(scope="module")
def sites():
    """Two sites (two loopback addresses each), four listening services on every host."""
    base = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
    picked = random.sample(range(2, 250), 4)
    hosts = [f"{base}.{i}" for i in picked]
    listeners = [Listener(h, port, banner) for h in hosts for port, banner in SERVICES]
    yield [hosts[:2], hosts[2:]]
    for ln in listeners:
        ln.close()


def scan_args(db, hosts: list[str]) -> list[str]:
    # one worker: an attempt (a write) at a time over a good part of the scan, interleaved with the other's
    scope = [x for h in hosts for x in ("--scope", f"{h}/32")]
    return ["scan", *hosts, *scope, "--checks", "ports", "--workers", "1", "--known-hosts", f"{db}.kh", "-q"]


def scan_cmd(db, hosts: list[str]) -> list[str]:
    return [sys.executable, "-m", "scanner.cli", "--db", str(db), *scan_args(db, hosts)]


def expected(hosts: list[str]) -> list[tuple]:
    return sorted([(h, "crypto.cleartext.telnet", 23) for h in hosts] + [(h, "crypto.cleartext.ftp", 21) for h in hosts]
                  + [(h, "hardening.risky-port", port) for h in hosts for port, _ in SERVICES])


def together(*cmds: list[str]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    out = []
    for c, p in zip(cmds, procs, strict=True):
        so, se = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(c, p.returncode, so, se))
    return out


def assert_complete(db, scan_id: str, hosts: list[str]) -> None:
    """The scan is done, every attempt of it finished, and its findings are exactly its hosts'."""
    assert rows(db, "SELECT status, phase FROM scans WHERE id = ?", (scan_id,)) == [("done", "done")]
    foreign = wildcard_ports()                        # another program's listener shows on every 127.x address
    attempts = rows(db, "SELECT address, port, status FROM attempts WHERE scan_id = ?", (scan_id,))
    assert sorted(a for a in attempts if a[1] not in foreign) == sorted(
        (h, port, "completed") for h in hosts for port, _ in SERVICES)
    assert sorted((f[2], f[1], f[3]) for f in finding_facts(db, scan_id) if f[3] not in foreign) == expected(hosts)


@pytest.mark.parametrize("start", ["new file", "file with a scan"])
def test_two_scans_at_once_into_one_database_both_complete(sites, tmp_path, start):
    db = tmp_path / "shared.db"
    if start == "file with a scan":
        p = tcmscan(*scan_args(db, sites[0]), db=db)
        assert p.returncode == 1, p.stderr
    before = rows(db, "SELECT * FROM findings ORDER BY scan_id, fingerprint") if db.exists() else []
    a, b = together(scan_cmd(db, sites[0]), scan_cmd(db, sites[1]))
    assert (a.returncode, a.stderr, b.returncode, b.stderr) == (1, "", 1, "")
    assert integrity(db) == ["ok"]
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert_complete(db, a.stdout.strip(), sites[0])
    assert_complete(db, b.stdout.strip(), sites[1])
    assert set(before) <= set(rows(db, "SELECT * FROM findings ORDER BY scan_id, fingerprint"))
    assert len(rows(db, "SELECT id FROM scans")) == (3 if before else 2)


HOLDER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
while not c.execute("SELECT count(*) FROM scans WHERE status = 'running'").fetchone()[0]:
    time.sleep(0.02)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
print("released", flush=True)
"""


def test_a_scan_outwaits_a_long_write_transaction_of_another_process(sites, tmp_path):
    """Another tcmscan's long transaction (pruning a big scan, say) holds the write lock for 8 s in the middle
    of the scan: the scan waits for it (up to WRITE_WAIT) and completes, instead of stopping with 'locked'."""
    db = tmp_path / "held.db"
    tcmscan("scans", db=db, check=True)              # the schema exists before the holder looks into it
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), "8"], stdout=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        scan = subprocess.Popen(scan_cmd(db, sites[0]), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic() - t0
        out, err = scan.communicate(timeout=120)
        took = time.monotonic() - t0
        assert holder.stdout.readline().strip() == "released"
    finally:
        holder.kill()
        holder.wait()
    assert (scan.returncode, err) == (1, ""), err
    assert took >= locked_at + 8, "the scan never met the held lock"
    assert integrity(db) == ["ok"]
    assert_complete(db, out.strip(), sites[0])


def test_two_processes_creating_the_schema_at_once_both_open_it(tmp_path):
    """Both read schema version 0, both wait for the write lock another process holds, then one creates the
    tables: the other sees that under the lock and does not try again ('table scans already exists')."""
    db = tmp_path / "fresh.db"
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("BEGIN IMMEDIATE")
    opener = "import sys; from scanner.store import Store; Store(sys.argv[1]).close(); print('opened')"
    procs = [subprocess.Popen([sys.executable, "-c", opener, str(db)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(2)                                     # both are waiting for the lock by now
    c.execute("ROLLBACK")
    c.close()
    results = [p.communicate(timeout=60) for p in procs]
    assert [(p.returncode, out, err) for p, (out, err) in zip(procs, results, strict=True)] == [
        (0, "opened\n", "")] * 2
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert integrity(db) == ["ok"]
