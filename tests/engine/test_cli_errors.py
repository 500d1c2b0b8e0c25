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
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--workers", "0"], "argument --workers: must be 1-256, not 0"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--host-cap", "x"], "argument --host-cap: not an integer: 'x'"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--vantage", "lobby"], "argument --vantage: invalid choice"),
    (["scan", "127.0.0.1", "--scope", "127.0.0.0/8", "--exclude", "127.0.0.300"],
     "not a network address or CIDR: '127.0.0.300'"),
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
    creds.chmod(0o600)                  # private, so that the content is what is refused
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


# -- vantage from the vocabulary, --db on either side, baseline validate's default ------------------------------
def test_scan_from_the_dmz(tmp_path):
    ln = Listener("127.0.0.61", 23, b"login: ")
    try:
        db = tmp_path / "d.db"
        p = tcmscan("scan", "127.0.0.61", "--scope", "127.0.0.61/32", "--checks", "ports", "--vantage", "dmz",
                    "--known-hosts", str(tmp_path / "kh"), "-q", db=db)
        assert p.returncode == 1, p.stderr                         # the telnet finding
        rows = json.loads(tcmscan("scans", "--format", "json", db=db, check=True).stdout)
        assert [r["settings"]["vantage"] for r in rows] == ["dmz"]
    finally:
        ln.close()


def test_db_after_the_subcommand_wins(tmp_path):
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    for args in (["scans", "--db", str(after)], ["--db", str(before), "scans", "--db", str(after)]):
        p = tcmscan(*args)
        assert (p.returncode, p.stdout.splitlines()[0].split()) == (0, ["scan", "status", "phase", "created",
                                                                        "targets", "profile"])
    assert (after.exists(), before.exists()) == (True, False)
    one_line_error(tcmscan("findings", "--db", str(after), db=before), 2, f"no scans in {after} yet")
    p = tcmscan("waive", "crypto.tls.*", "--host", "*", "--owner", "IT", "--reason", "legacy PACS",
                "--expires", "2099-01-01", "--db", str(after), db=before)
    assert (p.returncode, p.stdout.strip()) == (0, "waiver 1 recorded; re-evaluate a scan to apply it "
                                                   "('tcmscan evaluate SCAN_ID')")
    rows = tcmscan("--db", str(after), "waivers", check=True).stdout.splitlines()
    assert rows[2].split() == ["1", "crypto.tls.*", "*", "IT", "2099-01-01", "legacy", "PACS"]
    # the report plug-in reads the same option
    one_line_error(tcmscan("report", "--out", str(tmp_path / "r"), "--db", str(after), db=before), 2,
                   f"no scans in {after} yet")
    assert not before.exists()


def test_run_takes_db_after_the_subcommand(tmp_path):
    cfg = tmp_path / "jobs.toml"
    cfg.write_text('data_dir = "state"\n[[job]]\nname = "n"\ntargets = ["127.0.0.63"]\nscope = ["127.0.0.63/32"]\n'
                   'checks = ["ports"]\n[job.report]\nformats = ["json"]\n')
    db = tmp_path / "jobs.db"
    p = tcmscan("run", "n", "--config", str(cfg), "--db", str(db))
    assert p.returncode == 0, p.stderr
    assert [r["status"] for r in json.loads(tcmscan("scans", "--format", "json", db=db, check=True).stdout)] \
        == ["done"]
    assert not (tmp_path / "state" / "tcmscan.db").exists()


def test_every_subcommand_accepts_db_after_it():
    import argparse

    from scanner.cli.main import build_parser

    def leaves(parser, path=()):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [(path, parser)]
        return [leaf for a in subs for name, p in a.choices.items() for leaf in leaves(p, (*path, name))]

    found = leaves(build_parser())
    assert {p[0] for p, _ in found} >= {"scan", "scans", "findings", "report", "run", "schedule", "lab", "baseline"}
    for path, parser in found:
        action = parser._option_string_actions.get("--db")
        assert action is not None and action.default == argparse.SUPPRESS, path


def test_baseline_validate_defaults_to_the_built_in_profile(tmp_path):
    p = tcmscan("baseline", "validate", db=tmp_path / "a.db")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("tcm-2024-l3 ") and " rules valid (sha256 " in p.stdout
