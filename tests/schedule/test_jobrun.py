"""`tcmscan run JOB` end to end on loopback (real listeners, real nmap, real SQLite, real signed reports, real
webhook receiver): diff between runs, pruning, the per-job lock, resuming a killed run, a hanging endpoint."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanner.core.output import FINDING_BRIEF_FIELDS
from scanner.schedule.run import JobLock
from tests.helpers import ROOT, tcmscan
from tests.loopback import Listener
from tests.schedule.servers import HangingServer, WebhookReceiver, stop_listener

HOST = "127.0.0.52"


def write_config(tmp: Path, *, webhook: str, extra: str = "", keep: int = 1, workers: int = 16,
                 sign: bool = True) -> Path:
    state = tmp / "state"
    sign_lines = ""
    if sign:
        keys = tmp / "keys"
        if not keys.exists():
            (tmp / "pass").write_text("correct horse battery staple\n")
            p = tcmscan("keys", "generate", "--out", str(keys), "--passphrase-file", str(tmp / "pass"))
            assert p.returncode == 0, p.stderr
        sign_lines = f'sign_key = "{keys}/tcmscan-signing-key.pem"\npassphrase_file = "{tmp}/pass"\n'
    cfg = tmp / "jobs.toml"
    cfg.write_text(f"""data_dir = "{state}"
[[job]]
name = "loop"
targets = ["{HOST}"]
scope = ["{HOST}/32"]
checks = ["ports.open"]
workers = {workers}
known_hosts = "{state}/known_hosts"
{extra}
[job.report]
formats = ["json", "csv"]
langs = ["en"]
{sign_lines}
[job.notify]
min_severity = "high"
timeout = 1
retries = 1
webhook = [{{url = "{webhook}"}}]
[job.retention]
keep_scans = {keep}
""")
    return cfg


def job_runs(db: Path) -> list[dict]:
    c = sqlite3.connect(db)
    c.row_factory = sqlite3.Row
    rows = [dict(r) for r in c.execute("SELECT * FROM job_runs ORDER BY started, rowid")]
    c.close()
    return rows


def scan_ids(db: Path) -> list[str]:
    c = sqlite3.connect(db)
    ids = [r[0] for r in c.execute("SELECT id FROM scans ORDER BY created")]
    c.close()
    return ids


def test_two_runs_diff_notify_sign_prune(tmp_path):
    rx = WebhookReceiver()
    cfg = write_config(tmp_path, webhook=rx.url)
    telnet = Listener(HOST, 23, None)
    ftp = None
    try:
        p = tcmscan("run", "loop", "--config", str(cfg))
        assert p.returncode == 0, p.stderr
        first = job_runs(tmp_path / "state/tcmscan.db")[0]["scan_id"]
        assert p.stdout.startswith(f"job loop: scan {first} done; vs no previous scan: 2 new, 0 fixed; report ok "
                                   f"(signed): {tmp_path}/state/reports/loop/{first}; notifications: webhook ok; "
                                   "pruned 0 old scan(s)")
        doc = rx.requests[0]["json"]
        assert {(f["rule_id"], f["port"]) for f in doc["new"]} == {("crypto.cleartext.telnet", 23)}   # >= high only
        stop_listener(telnet)                               # "fixed" telnet, planted an FTP server
        ftp = Listener(HOST, 21, b"220 ftp ready\r\n")

        p = tcmscan("run", "loop", "--config", str(cfg))
        assert p.returncode == 0, p.stderr
        runs = job_runs(tmp_path / "state/tcmscan.db")
        second = runs[1]["scan_id"]
        assert [(r["scan_id"], r["status"]) for r in runs] == [(first, "pruned"), (second, "done")]
        summary = json.loads(runs[1]["summary"])
        d = tcmscan("diff", first, second, "--format", "json", db=tmp_path / "state/tcmscan.db")
        assert d.returncode == 2                           # the first scan is gone (keep_scans = 1) ...
        assert scan_ids(tmp_path / "state/tcmscan.db") == [second]
        assert not (tmp_path / f"state/reports/loop/{first}").exists()    # ... and its reports with it
        assert runs[1]["previous_scan_id"] == first
        def triples(kind: str) -> set:
            return {(f["rule_id"], f["port"]) for f in summary[kind]}

        assert triples("new") == {("crypto.cleartext.ftp", 21), ("hardening.risky-port", 21)}
        assert {tuple(f) for v in summary.values() for f in v} == {FINDING_BRIEF_FIELDS}   # the short form
        assert triples("fixed") == {("crypto.cleartext.telnet", 23), ("hardening.risky-port", 23)}
        doc = rx.requests[1]["json"]
        assert (doc["scan_id"], doc["previous_scan_id"]) == (second, first)
        assert {(f["rule_id"], f["address"], f["port"]) for f in doc["new"]} == {("crypto.cleartext.ftp", HOST, 21)}
        assert {(f["rule_id"], f["address"], f["port"]) for f in doc["fixed"]} == {("crypto.cleartext.telnet", HOST, 23)}
        bundle = tmp_path / f"state/reports/loop/{second}/en"
        assert f"Signed report: {bundle}" in doc["text_en"]
        v = tcmscan("verify", str(bundle), "--pubkey", str(tmp_path / "keys/tcmscan-signing-key.pub.pem"))
        assert v.returncode == 0, v.stderr
        assert v.stdout.startswith(f"OK: 2 files intact, scan {second}, signed by Ed25519 ")
    finally:
        rx.close()
        stop_listener(telnet)
        if ftp:
            stop_listener(ftp)


def test_lock_then_killed_run_is_resumed(tmp_path):
    # slow listeners (each holds its client 2 s) and one worker: the run is still scanning when we act
    ports = [21, 23, 80, 873, 6379]
    listeners = [Listener(HOST, p, None, hold=2.0) for p in ports]
    rx = WebhookReceiver()
    cfg = write_config(tmp_path, webhook=rx.url, workers=1, sign=False)
    db = tmp_path / "state/tcmscan.db"
    try:
        a = subprocess.Popen([sys.executable, "-m", "scanner.cli", "run", "loop", "--config", str(cfg)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and done < 2:
            time.sleep(0.2)
            try:
                c = sqlite3.connect(db, timeout=1)
                done = c.execute("SELECT count(*) FROM attempts WHERE status='completed'").fetchone()[0]
                c.close()
            except sqlite3.OperationalError:
                continue
        assert done >= 2, "the first run never got going"

        b = tcmscan("run", "loop", "--config", str(cfg))           # a second run while the first holds the lock
        assert b.returncode == 3
        assert re.fullmatch(rf"tcmscan: job 'loop' is already running \(pid {a.pid} since \S+\); not starting a "
                            r"second run", b.stderr.strip()), b.stderr

        a.send_signal(signal.SIGKILL)
        a.wait(30)
        (dead,) = job_runs(db)
        assert dead["status"] == "running"                          # it died without a word

        c = tcmscan("run", "loop", "--config", str(cfg))
        assert c.returncode == 0, c.stderr
        assert c.stdout.startswith(f"job loop: scan {dead['scan_id']} done (resumed); ")
        (run,) = job_runs(db)
        assert (run["scan_id"], run["runs"], run["status"]) == (dead["scan_id"], 2, "done")
        assert scan_ids(db) == [dead["scan_id"]]                     # resumed, not started over
        con = sqlite3.connect(db)
        n_completed = con.execute("SELECT count(*) FROM attempts WHERE status='completed'").fetchone()[0]
        open_ports = {r[0] for r in con.execute("SELECT port FROM findings WHERE rule_id='hardening.risky-port'")}
        con.close()
        assert n_completed == len(ports)
        assert open_ports == {21, 23, 873, 6379}               # the risky ones among the listeners
    finally:
        rx.close()
        for x in listeners:
            stop_listener(x)


def test_lock_is_per_job_and_released(tmp_path):
    with JobLock(tmp_path, "a"):
        with JobLock(tmp_path, "b"):
            pass
        with pytest.raises(Exception) as e:
            with JobLock(tmp_path, "a"):
                pass
        assert "job 'a' is already running (pid " in str(e.value)
    with JobLock(tmp_path, "a"):
        pass


def test_hanging_webhook_does_not_lose_the_scan(tmp_path):
    hang = HangingServer()
    cfg = write_config(tmp_path, webhook=f"http://127.0.0.1:{hang.port}/hook", sign=False)
    telnet = Listener(HOST, 23, None)
    try:
        t0 = time.monotonic()
        p = tcmscan("run", "loop", "--config", str(cfg))
        took = time.monotonic() - t0
        assert p.returncode == 4
        assert p.stderr.strip() == (f"tcmscan: notification webhook to http://127.0.0.1:{hang.port} failed "
                                    f"after 2 attempt(s) in " + p.stderr.split(" in ")[1].split(" s:")[0]
                                    + " s: timed out (timed out)")
        (run,) = job_runs(tmp_path / "state/tcmscan.db")
        assert run["status"] == "done" and run["report_status"] == "ok"
        (note,) = json.loads(run["notifications"])
        assert (note["channel"], note["ok"], note["attempts"]) == ("webhook", False, 2)
        assert 2.0 <= note["seconds"] < 4.5                           # 1 s + 1 s backoff + 1 s, bounded
        assert (tmp_path / f"state/reports/loop/{run['scan_id']}/en/report.json").is_file()
        f = tcmscan("findings", run["scan_id"], "--format", "json", db=tmp_path / "state/tcmscan.db")
        assert {(x["rule_id"], x["port"]) for x in json.loads(f.stdout)} == \
            {("crypto.cleartext.telnet", 23), ("hardening.risky-port", 23)}
        assert took < 60
    finally:
        hang.close()
        stop_listener(telnet)


def test_run_that_died_after_the_scan_only_finishes_reporting(tmp_path):
    rx = WebhookReceiver()
    cfg = write_config(tmp_path, webhook=rx.url)
    db = tmp_path / "state/tcmscan.db"
    telnet = Listener(HOST, 23, None)
    try:
        assert tcmscan("run", "loop", "--config", str(cfg)).returncode == 0
    finally:
        stop_listener(telnet)
    (run,) = job_runs(db)
    sid = run["scan_id"]

    def died_after_scan() -> None:     # what a SIGKILL between the scan and the reports leaves behind
        con = sqlite3.connect(db)
        con.execute("UPDATE job_runs SET status = 'running' WHERE scan_id = ?", [sid])
        con.commit()
        con.close()

    try:
        died_after_scan()
        (tmp_path / "pass").write_text("not the passphrase\n")
        t0 = time.monotonic()
        p = tcmscan("run", "loop", "--config", str(cfg))
        assert time.monotonic() - t0 < 20                           # no rescan: the listener is gone anyway
        assert p.returncode == 4
        key = tmp_path / "keys/tcmscan-signing-key.pem"
        assert p.stderr.strip() == f"tcmscan: job loop: report failed: cannot load signing key {key}: wrong passphrase"
        assert p.stdout.startswith(f"job loop: scan {sid} done (resumed); ")
        assert scan_ids(db) == [sid]
        doc = rx.requests[-1]["json"]
        assert doc["report"] == {"dirs": [], "signed": False,
                                 "status": f"failed: cannot load signing key {key}: wrong passphrase"}
        assert f"Report status: failed: cannot load signing key {key}: wrong passphrase" in doc["text_en"]

        died_after_scan()
        (tmp_path / "pass").write_text("correct horse battery staple\n")
        p = tcmscan("run", "loop", "--config", str(cfg))
        assert p.returncode == 0, p.stderr
        (run,) = job_runs(db)
        assert (run["scan_id"], run["status"], run["report_status"], run["runs"]) == (sid, "done", "ok", 3)
        assert (tmp_path / f"state/reports/loop/{sid}/en/manifest.sig").is_file()
    finally:
        rx.close()


def test_scan_that_cannot_start_is_one_line_and_recorded(tmp_path):
    rx = WebhookReceiver()
    inv = tmp_path / "inventory.yaml"
    inv.write_text("assets: [unclosed\n")
    cfg = write_config(tmp_path, webhook=rx.url, sign=False, extra=f'inventory = "{inv}"')
    try:
        p = tcmscan("run", "loop", "--config", str(cfg))
        assert p.returncode == 3
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and re.fullmatch(r"tcmscan: job loop: scan s\S+ failed: .*inventory.* \(nothing was "
                                                r"scanned\)", lines[0]), p.stderr
        (run,) = job_runs(tmp_path / "state/tcmscan.db")
        assert run["status"] == "failed" and "inventory" in run["error"]
        (req,) = rx.requests                                   # people hear that the scheduled scan did not run
        assert (req["json"]["status"], req["json"]["new"]) == ("failed", [])
        assert req["json"]["subject"] == "[tcmscan] 任务 loop 扫描未完成 / job loop: scan did not finish"
    finally:
        rx.close()
