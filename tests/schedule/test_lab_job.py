"""A scheduled job run twice against the lab with a change in between: an rlogin-like listener planted on
portal is removed (fixed) and one planted on pump (new). Checks the exact diff, the webhook, the e-mail (local
aiosmtpd with STARTTLS), syslog, the signed report (`tcmscan verify`) and pruning. Every plant is a process this
test starts inside the host's network namespace and kills in `finally`; the lab's own daemons are not touched."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import tcmscan
from tests.schedule.servers import SmtpServer, SyslogReceiver, WebhookReceiver, wait_until

pytestmark = pytest.mark.lab

LISTEN = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
          "s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(16)\n"
          "while True:\n c,_=s.accept();c.close()\n")


class Plant:
    """A listener on `port` inside lab host `name` (its netns), started and stopped by this test."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.proc = subprocess.Popen(["ip", "netns", "exec", f"lab-{name}", "python3", "-c", LISTEN, str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_until(self.answers, 10):
            self.stop()
            raise RuntimeError(f"plant {name}:{port} did not come up")

    def answers(self) -> bool:
        try:
            socket.create_connection((self.address, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()              # our own process, by its id
            self.proc.wait(10)


def _still_there(plant: Plant) -> None:
    # The lab is shared: if someone restarted it during the run, our plant's namespace is gone and the diff
    # means nothing. Say so instead of failing on the diff.
    if plant.proc.poll() is not None or not plant.answers():
        pytest.fail(f"plant {plant.address}:{plant.port} vanished during the run: the lab was restarted under us")


def _config(tmp: Path, lab: dict, *, hook: str, smtp: SmtpServer, syslog_port: int) -> Path:
    (tmp / "pass").write_text("lab job passphrase 1\n")
    (tmp / "smtp.pw").write_text("lab-smtp-pass\n")
    p = tcmscan("keys", "generate", "--out", str(tmp / "keys"), "--passphrase-file", str(tmp / "pass"))
    assert p.returncode == 0, p.stderr
    # a copy: the shared lab may be restarted by someone else, which rewrites (and briefly removes) its files
    inventory = tmp / "inventory.yaml"
    inventory.write_bytes(Path(lab["inventory"]).read_bytes())
    cfg = tmp / "jobs.toml"
    cfg.write_text(f"""data_dir = "{tmp}/state"
[[job]]
name = "lab-two"
targets = ["10.77.0.23", "10.77.0.40"]
scope = ["10.77.0.0/24"]
inventory = "{inventory}"
checks = ["ports.open"]
known_hosts = "{tmp}/state/known_hosts"
[job.report]
formats = ["html", "json", "sarif"]
langs = ["zh", "en"]
sign_key = "{tmp}/keys/tcmscan-signing-key.pem"
passphrase_file = "{tmp}/pass"
[job.notify]
min_severity = "high"
on_fixed = true
timeout = 5
retries = 1
webhook = [{{url = "{hook}?token=lab-hook-token", headers = {{"X-Token" = "lab-header-token"}}}}]
syslog = {{address = "udp://127.0.0.1:{syslog_port}", facility = "local0"}}
[job.notify.email]
host = "127.0.0.1"
port = {smtp.port}
user = "scanner"
password_file = "{tmp}/smtp.pw"
ca_file = "{smtp.ca}"
from = "tcmscan@hospital.test"
to = ["security@hospital.test"]
[job.retention]
keep_scans = 1
""")
    return cfg


def test_job_twice_against_the_lab(lab, lab_host, tmp_path):
    pump, portal = lab_host("pump"), lab_host("portal")
    hook = WebhookReceiver()
    smtp = SmtpServer(tmp_path, login=("scanner", "lab-smtp-pass"))
    slog = SyslogReceiver()
    plants: list[Plant] = []
    try:
        cfg = _config(tmp_path, lab, hook=hook.url, smtp=smtp, syslog_port=slog.port)
        db = tmp_path / "state/tcmscan.db"
        plants.append(Plant("portal", portal, 513))           # a weakness that will be fixed
        t0 = time.monotonic()
        p = tcmscan("run", "lab-two", "--config", str(cfg))
        run1_s = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        first = json.loads(tcmscan("scans", "--format", "json", db=db).stdout)[0]["id"]
        _still_there(plants[-1])

        plants.pop().stop()                                     # fixed on portal ...
        plants.append(Plant("pump", pump, 514))                 # ... and a new one planted on pump
        t0 = time.monotonic()
        p = tcmscan("run", "lab-two", "--config", str(cfg))
        run2_s = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        _still_there(plants[-1])
        plants.pop().stop()
        scans = json.loads(tcmscan("scans", "--format", "json", db=db).stdout)
        assert len(scans) == 1 and scans[0]["status"] == "done"            # pruned to keep_scans = 1
        second = scans[0]["id"]
        assert second != first

        con = sqlite3.connect(db)
        (summary, prev, report_dir) = con.execute(
            "SELECT summary, previous_scan_id, report_dir FROM job_runs WHERE scan_id = ?", [second]).fetchone()
        statuses = dict(con.execute("SELECT scan_id, status FROM job_runs").fetchall())
        con.close()
        assert prev == first and statuses == {first: "pruned", second: "done"}
        diff = json.loads(summary)
        name = {pump: "pump", portal: "portal"}
        got = {k: {(name[f["address"]], f["rule_id"], f["port"]) for f in diff[k]} for k in ("new", "fixed")}
        assert got == {"new": {("pump", "crypto.cleartext.rlogin", 514), ("pump", "hardening.risky-port", 514)},
                       "fixed": {("portal", "crypto.cleartext.rlogin", 513), ("portal", "hardening.risky-port", 513)}}
        assert diff["not_reassessed"] == []

        # notifications: first run announced the portal plant (>= high) and the lab's own high/critical findings
        assert len(hook.requests) == 2
        first_new = {(name[f["address"]], f["rule_id"], f["port"]) for f in hook.requests[0]["json"]["new"]}
        assert ("portal", "crypto.cleartext.rlogin", 513) in first_new
        doc = hook.requests[1]["json"]
        assert hook.requests[1]["headers"]["X-Token"] == "lab-header-token"
        assert (doc["scan_id"], doc["previous_scan_id"], doc["status"]) == (second, first, "done")
        assert {(name[f["address"]], f["rule_id"], f["port"]) for f in doc["new"]} == \
            {("pump", "crypto.cleartext.rlogin", 514)}
        assert {(name[f["address"]], f["rule_id"], f["port"]) for f in doc["fixed"]} == \
            {("portal", "crypto.cleartext.rlogin", 513)}
        zh_dir, en_dir = (tmp_path / f"state/reports/lab-two/{second}/{lang}" for lang in ("zh", "en"))
        assert doc["report"] == {"dirs": [str(zh_dir), str(en_dir)], "signed": True, "status": "ok"}
        assert report_dir == str(zh_dir.parent)

        assert wait_until(lambda: len(smtp.messages) == 2)
        mail = smtp.messages[1]
        assert mail["tls"] and mail["to"] == ["security@hospital.test"]
        assert mail["msg"]["Subject"] == "[tcmscan] 任务 lab-two：新增 1 项、已修复 1 项 / job lab-two: 1 new, 1 fixed (>= high)"
        text = SmtpServer.text(mail["msg"])
        assert f"  [高危] {pump}:514 开放rlogin/rsh/rexec明文远程服务 (crypto.cleartext.rlogin)" in text
        assert f"已签名报告: {zh_dir}, {en_dir}" in text and f"Signed report: {zh_dir}, {en_dir}" in text
        raw = b"".join(r["raw"] for r in hook.requests) + b"".join(m["msg"].as_bytes() for m in smtp.messages)
        for secret in (b"lab-smtp-pass", b"lab-hook-token", b"lab-header-token", b"lab job passphrase",
                       b"scanner_ed25519"):
            assert secret not in raw, secret

        assert wait_until(lambda: len(slog.messages) == 2)
        assert f"tcmscan job=lab-two scan={second} status=done new=1 fixed=1 min_severity=high report={zh_dir} " \
               "signed=yes".encode() in slog.messages[1]

        pub = str(tmp_path / "keys/tcmscan-signing-key.pub.pem")
        for d in (zh_dir, en_dir):
            v = tcmscan("verify", str(d), "--pubkey", pub)
            assert v.returncode == 0, v.stderr
            assert v.stdout.startswith(f"OK: 3 files intact, scan {second}, signed by Ed25519 ")
        assert sorted(x.name for x in zh_dir.iterdir()) == ["manifest.json", "manifest.sig", "report.html",
                                                            "report.json", "report.sarif"]
        assert not (tmp_path / f"state/reports/lab-two/{first}").exists()
        print(f"\nlab job: run 1 {run1_s:.1f} s, run 2 {run2_s:.1f} s")
    finally:
        for pl in plants:
            pl.stop()
        hook.close()
        smtp.close()
        slog.close()
    # the lab is as we found it: neither plant answers
    for address, port in ((portal, 513), (pump, 514)):
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=1).close()
