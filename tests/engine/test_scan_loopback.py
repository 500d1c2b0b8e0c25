"""The engine end to end on real services on loopback, with a real SQLite file and the real CLI."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, findings, observations, scan, tcmscan
from tests.loopback import Listener, pick_port, start_sshd, start_tls, wildcard_ports

TELNET_BANNER = b"\xff\xfb\x01\xff\xfb\x03login: "


@pytest.fixture
def services(tmp_path):
    """An sshd (22), a TLS server (443), a telnet-like listener (23) and a silent redis-port listener (6379) on
    127.0.0.22; sshd and the TLS server move to free ports where 22/443 are taken (23 and 6379 are what the
    risky-port rule judges). Yields {"ssh": port, "tls": port, "taken": the default ports someone else holds}."""
    ports = {"ssh": pick_port(["127.0.0.22"], 22), "tls": pick_port(["127.0.0.22"], 443)}
    ports["taken"] = {22, 443} - {ports["ssh"], ports["tls"]}
    procs = [start_sshd(tmp_path, "127.0.0.22", ports["ssh"]), start_tls(tmp_path, "127.0.0.22", ports["tls"])]
    listeners = [Listener("127.0.0.22", 23, TELNET_BANNER), Listener("127.0.0.22", 6379, None)]
    yield ports
    for p in procs:
        p.kill()
        p.wait()
    for ln in listeners:
        ln.close()


def test_scan_of_real_loopback_services_gives_exact_findings(services, tmp_path):
    db = tmp_path / "scan.db"
    foreign = wildcard_ports() | services["taken"]
    ssh, tls = services["ssh"], services["tls"]
    scan_id, found = scan(["127.0.0.22"], scope=["127.0.0.22/32"], db=db, checks=["ports"],
                          extra=["--ports", str(ssh), "--ports", str(tls)])
    foreign |= wildcard_ports()   # a wildcard listener of another process on this machine is not ours to assert
    found = [f for f in found if f["port"] not in foreign]
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        ("127.0.0.22", "crypto.cleartext.telnet", 23, "high"),
        ("127.0.0.22", "hardening.risky-port", 23, "medium"),
        ("127.0.0.22", "hardening.risky-port", 6379, "medium"),
    }
    obs = {o["port"]: o["data"] for o in observations(db, scan_id) if o["port"] not in foreign}
    assert sorted(obs) == sorted([ssh, 23, tls, 6379])
    assert obs[ssh]["name"] == "ssh" and obs[ssh]["banner"].startswith("SSH-2.0-OpenSSH")
    assert obs[23]["name"] == "telnet" and obs[23]["banner"] == "\\xff\\xfb\\x01\\xff\\xfb\\x03login:"
    assert (obs[tls]["name"], obs[tls]["tunnel"], obs[tls]["product"]) == ("http", "ssl", "OpenSSL s_server -www httpd")
    f = next(f for f in found if f["rule_id"] == "crypto.cleartext.telnet")
    assert set(f) >= {"fingerprint", "rule_id", "check_id", "address", "port", "severity", "title_zh", "title_en",
                      "clauses", "evidence"}
    assert f["title_zh"] == "使用明文Telnet进行远程管理" and f["check_id"] == "ports.open"
    # every attempt is recorded, with its status
    rows = [r for r in json.loads(tcmscan("attempts", scan_id, "--format", "json", db=db, check=True).stdout)
            if r["port"] not in foreign]
    assert sorted((r["port"], r["status"]) for r in rows) == sorted([(ssh, "completed"), (23, "completed"),
                                                                     (tls, "completed"), (6379, "completed")])
    # where the time went: each phase's wall time is a scan event, in order (discovery and checks overlap:
    # discovery ends when the last host is stored, checks when the last attempt is)
    with sqlite3.connect(db) as con:
        phases = [m for (m,) in con.execute("SELECT message FROM events WHERE scan_id = ? AND message LIKE "
                                            "'phase %' ORDER BY id", [scan_id])]
    assert [m.split(":")[0] for m in phases] == ["phase discovery", "phase checks", "phase evaluation"]
    assert all(m.endswith(" s") and float(m.split(": ")[1][:-2]) >= 0 for m in phases)
    # latest-scan defaults, CSV and the exit code policy
    assert [f for f in findings(db) if f["port"] not in foreign] == found
    csv = tcmscan("findings", "--format", "csv", db=db, check=True).stdout
    assert csv.splitlines()[0].startswith('"fingerprint","address","host_name","port","rule_id","check_id"')
    again = tcmscan("scan", "127.0.0.22", "--scope", "127.0.0.22/32", "--checks", "ports", "--fail-on",
                    "critical", "-q", db=db)
    assert again.returncode == 0
    d = json.loads(tcmscan("diff", scan_id, again.stdout.strip(), "--format", "json", db=db, check=True).stdout)
    assert sorted((k, f["rule_id"], f["port"]) for k, v in d.items() for f in v if f["port"] not in foreign) == [
        ("persisting", "crypto.cleartext.telnet", 23), ("persisting", "hardening.risky-port", 23),
        ("persisting", "hardening.risky-port", 6379)]


def _capture(address: str, tmp_path):
    pcap = tmp_path / f"{address}.pcap"
    p = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "-w", str(pcap), "host", address],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert "listening on" in p.stderr.readline()
    return p, pcap


def _packets(p, pcap) -> int:
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=10)
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True).stdout
    return len(out.splitlines())


@pytest.mark.skipif(subprocess.run(["which", "tcpdump"], capture_output=True).returncode, reason="no tcpdump")
def test_out_of_scope_and_excluded_targets_get_no_packet(tmp_path):
    ln = Listener("127.0.0.98", 23, TELNET_BANNER)
    try:
        cap, pcap = _capture("127.0.0.99", tmp_path)
        r = tcmscan("scan", "127.0.0.99", "--scope", "127.0.0.98/32", db=tmp_path / "o.db")
        assert r.returncode == 2
        assert r.stderr.strip() == ("tcmscan: target '127.0.0.99' (127.0.0.99) is outside the scope "
                                    "127.0.0.98/32")
        r = tcmscan("scan", "127.0.0.98-99", "--scope", "127.0.0.96/30", "--exclude", "127.0.0.99", "--checks",
                    "ports", "-q", db=tmp_path / "o.db")
        assert r.returncode == 1, r.stderr
        assert _packets(cap, pcap) == 0
        # the capture itself works: the in-scope neighbour did get traffic
        assert ln.accepted >= 1
    finally:
        ln.close()


def test_sigkill_mid_scan_then_resume_equals_an_uninterrupted_scan(tmp_path):
    ports = [21, 23, 80, 873, 3306, 5432, 6379, 8080, 9200, 11211]
    listeners = [Listener("127.0.0.31", p, None, hold=2.0) for p in ports]
    try:
        killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"
        args = ["scan", "127.0.0.31", "--scope", "127.0.0.31/32", "--checks", "ports", "--workers", "1", "-q"]
        proc = subprocess.Popen([sys.executable, "-m", "scanner.cli", "--db", str(killed_db), *args], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done_before: list = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if killed_db.exists():
                try:
                    c = sqlite3.connect(killed_db, timeout=1)
                    done_before = c.execute("SELECT id, finished FROM attempts WHERE status='completed' "
                                            "ORDER BY id").fetchall()
                    c.close()
                except sqlite3.OperationalError:
                    continue
                if len(done_before) >= 3:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 3 <= len(done_before) < len(ports), "the scan was not caught mid-way"
        scan_id = json.loads(tcmscan("scans", "--format", "json", db=killed_db, check=True).stdout)[0]["id"]
        pending = json.loads(tcmscan("attempts", scan_id, "--status", "pending", "--format", "json",
                                     db=killed_db, check=True).stdout)
        assert pending, "a killed scan leaves its unfinished attempts pending"

        r = tcmscan("scan", "--resume", scan_id, "-q", db=killed_db)
        assert r.returncode == 1, r.stderr
        c = sqlite3.connect(killed_db)
        after = dict(c.execute("SELECT id, finished FROM attempts WHERE status='completed'").fetchall())
        assert all(after[aid] == finished for aid, finished in done_before), "completed attempts were repeated"
        assert len(after) == len(ports)

        _, clean = scan(["127.0.0.31"], scope=["127.0.0.31/32"], db=clean_db, checks=["ports"])
        resumed = findings(killed_db, scan_id)
        assert sorted((f["fingerprint"], f["rule_id"], f["port"]) for f in resumed) == \
            sorted((f["fingerprint"], f["rule_id"], f["port"]) for f in clean)
        # silent listeners: nmap -sV matches nothing (each probe waits VERSION_PROBE_WAIT_MS, before the listener
        # closes), so the port's own service names them: 21 ftp and 23 telnet, as for any silent service
        assert {(f["rule_id"], f["port"]) for f in clean} == {
            ("hardening.risky-port", p) for p in (21, 23, 873, 3306, 6379, 11211)} | {
            ("crypto.cleartext.telnet", 23), ("crypto.cleartext.ftp", 21)}
    finally:
        for ln in listeners:
            ln.close()


def test_discovery_names_a_service_by_its_banner_where_nmap_could_not():
    """A server nmap -sV left unnamed (slow under load, or an unusual port) is named by what it says first,
    so the checks for that service apply; a silent one keeps nmap's name."""
    from scanner.core.models import Service
    from scanner.engine.discovery import hospital_ports, identify_medical

    talk = Listener("127.0.0.33", 40021, b"220 archive FTP server ready\r\n", hold=3.0)
    quiet = Listener("127.0.0.33", 40022, None, hold=3.0)
    try:
        services = [Service(40021, name="unknown"), Service(40022, name="redis")]
        out = identify_medical("127.0.0.33", services, hospital_ports()["no_version_probe"])
        assert [(s.port, s.name, s.source) for s in out] == [(40021, "ftp", "probe"), (40022, "redis", "nmap")]
        assert out[0].extrainfo == "banner: '220 archive FTP server ready'"
    finally:
        talk.close()
        quiet.close()


def test_a_hosts_checks_run_while_another_host_is_discovered(tmp_path):
    """Discovery and checks overlap: the attempts of a host whose ports are known at once are done before a slow
    host is discovered (a listener that holds every connection silently: nmap -sV waits out its probes there)."""
    fast, slow = "127.0.0.24", "127.0.0.25"
    listeners = [Listener(fast, 23, TELNET_BANNER), Listener(slow, 6379, None, hold=8)]
    db = tmp_path / "scan.db"
    try:
        scan_id, found = scan([fast, slow], scope=["127.0.0.24/31"], db=db, checks=["ports"])
    finally:
        for ln in listeners:
            ln.close()
    foreign = wildcard_ports()
    assert {(f["address"], f["rule_id"], f["port"]) for f in found if f["port"] not in foreign} == {
        (fast, "crypto.cleartext.telnet", 23), (fast, "hardening.risky-port", 23), (slow, "hardening.risky-port", 6379)}
    with sqlite3.connect(db) as con:
        (discovered,) = con.execute("SELECT time FROM events WHERE scan_id = ? AND message LIKE 'phase discovery:%'",
                                    [scan_id]).fetchone()
        done = dict(con.execute("SELECT address, max(finished) FROM attempts WHERE scan_id = ? AND port = ? "
                                "GROUP BY address", [scan_id, 23]).fetchall())
        (took,) = con.execute("SELECT message FROM events WHERE scan_id = ? AND message LIKE 'phase discovery:%'",
                              [scan_id]).fetchone()
    assert float(took.split(": ")[1][:-2]) > 3.0, took      # the slow host is slow to discover
    assert done[fast] < discovered, (done, discovered)
