"""Bad input: one clear line, a documented non-zero exit, no traceback, nothing stored lost."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, tcmscan
from tests.loopback import Listener


def one_line_error(p: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert p.returncode == code, p.stderr
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr
    assert lines[-1].startswith("tcmscan: ") and text in lines[-1], lines


@pytest.mark.parametrize("args,text", [
    (["scan", "10.1.1.1", "--scope", "127.0.0.0/8"], "outside the scope"),
    (["scan", "127.0.0.1"], "--scope is required"),
    (["scan", "999.1.1.1", "--scope", "127.0.0.0/8"], "cannot resolve target name '999.1.1.1'"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/33"], "not a network address or CIDR"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--inventory", "/nonexistent.yaml"],
     "cannot read inventory /nonexistent.yaml"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--credentials", "/nonexistent.yaml"],
     "cannot read credentials file /nonexistent.yaml"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--profile", "nope"], "unknown baseline profile 'nope'"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--checks", "nope"], "no installed check matches nope"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--exclude-mac", "zz"], "not a MAC prefix"),
    (["scan", "--resume", "s-nope"], "no scan 's-nope'"),
    (["findings", "s-nope"], "no scan 's-nope'"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--ports", "70000"], "port out of range"),
    (["waive", "x", "--host", "*", "--owner", "o", "--reason", "r", "--expires", "soon"], "--expires must be a date"),
    (["bogus"], "invalid choice"),
])
def test_usage_errors_exit_2(tmp_path, args, text):
    one_line_error(tcmscan(*args, db=tmp_path / "a.db"), 2, text)


def test_bad_inventory_and_credentials_content(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("assets:\n  - {address: 10.0.0.1, zone: moon}\n")
    one_line_error(tcmscan("scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--inventory", str(inv),
                           db=tmp_path / "a.db"), 2, "zone must be one of")
    creds = tmp_path / "c.yaml"
    creds.write_text("credentials:\n  - {match: 127.0.0.1, type: ssh, user: u, password: 'hunter2', key_file: /no}\n")
    p = tcmscan("scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--credentials", str(creds), db=tmp_path / "a.db")
    one_line_error(p, 2, "key file /no does not exist")
    assert "hunter2" not in p.stderr + p.stdout
    creds.write_text("credentials: [{{{ password: hunter2")
    p = tcmscan("scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--credentials", str(creds), db=tmp_path / "a.db")
    one_line_error(p, 2, "is not valid YAML")
    assert "hunter2" not in p.stderr


def test_corrupt_database_is_refused_and_kept(tmp_path):
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"garbage" * 1000)
    one_line_error(tcmscan("scans", db=db), 2, "is not a usable tcmscan database")
    assert db.read_bytes() == b"garbage" * 1000


def test_locked_database_exits_3(tmp_path):
    db = tmp_path / "l.db"
    assert tcmscan("scans", db=db).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)"), str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line_error(tcmscan("scan", "127.0.0.1", "--scope", "127.0.0.1/32", db=db), 3, "is locked")
    finally:
        holder.kill()
        holder.wait()


def test_missing_nmap_exits_3_and_the_scan_stays_resumable(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    db = tmp_path / "n.db"
    p = tcmscan("scan", "127.0.0.1", "--scope", "127.0.0.1/32", db=db, env={"PATH": str(bindir)})
    one_line_error(p, 3, "nmap is not installed (apt-get install nmap)")
    rows = json.loads(tcmscan("scans", "--format", "json", db=db, check=True).stdout)
    assert [(r["status"], r["phase"], r["error"]) for r in rows] == [
        ("failed", "created", "nmap is not installed (apt-get install nmap)")]


@pytest.mark.skipif(not shutil.which("capsh"), reason="needs capsh to drop CAP_NET_RAW")
def test_without_raw_socket_privilege_it_falls_back_to_connect_scans(tmp_path):
    ln = Listener("127.0.0.41", 23, b"login: ")
    try:
        cmd = (f"{sys.executable} -m scanner.cli --db {tmp_path / 'r.db'} scan 127.0.0.41 --scope 127.0.0.41/32 "
               f"--checks ports")
        p = subprocess.run(["capsh", "--drop=cap_net_raw", "--", "-c", cmd], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
        assert p.returncode == 1, p.stderr
        assert "note: no raw-socket privilege (CAP_NET_RAW): host discovery and port scans use TCP connect" \
            in p.stderr
        found = json.loads(tcmscan("findings", "--format", "json", db=tmp_path / "r.db", check=True).stdout)
        assert {(f["rule_id"], f["port"]) for f in found} == {("crypto.cleartext.telnet", 23),
                                                              ("hardening.risky-port", 23)}
    finally:
        ln.close()
