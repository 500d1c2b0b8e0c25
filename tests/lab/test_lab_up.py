"""Every planted service answers AS PLANTED, checked from the scanner's vantage point
(root namespace, 10.77.0.1) with real clients.  Targets: lab addresses only."""

from __future__ import annotations

import base64
import datetime as dt
import ftplib
import http.client
import json
import socket
import ssl
import subprocess
import warnings
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.lab.tls_hello import client_hello

pytestmark = pytest.mark.lab

KEY = "/var/lib/tcmscan-lab/scanner_ed25519"
CA = "/var/lib/tcmscan-lab/pki/ca.pem"


# ---------------------------------------------------------------- helpers

def tls_context(minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, ciphers: str = "ALL:@SECLEVEL=0") -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = minimum
        ctx.maximum_version = maximum
    ctx.set_ciphers(ciphers)
    return ctx


def handshake(address: str, ctx: ssl.SSLContext) -> tuple[str, str] | None:
    """(protocol, cipher) on success, None when the server refuses."""
    try:
        with socket.create_connection((address, 443), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=address) as tls:
            return str(tls.version()), tls.cipher()[0]
    except (ssl.SSLError, ConnectionResetError):
        return None


def server_cert(address: str) -> x509.Certificate:
    ctx = tls_context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_3)
    with socket.create_connection((address, 443), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def ssh(address: str, command: str, **auth: Any) -> str:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # lab host keys change every up
    if not auth:
        auth = {"pkey": paramiko.Ed25519Key.from_private_key_file(KEY)}
    client.connect(address, username=auth.pop("username", "root"), look_for_keys=False, allow_agent=False,
                   timeout=10, **auth)
    try:
        _, out, err = client.exec_command(command, timeout=30)
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, err.read().decode()
        return text
    finally:
        client.close()


def ssh_negotiates(address: str, option: str, value: str) -> bool:
    """Does sshd accept a connection restricted to this one algorithm? (OpenSSH client)"""
    # AEAD ciphers carry their own MAC: pin a non-AEAD cipher when testing MACs.
    extra = ["-o", "Ciphers=aes128-ctr"] if option == "MACs" else []
    proc = subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "HostKeyAlgorithms=+ssh-rsa",
         "-o", "RequiredRSASize=1024", *extra, "-o", f"{option}={value}", f"root@{address}", "true"],
        capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode == 0


def http_get(address: str, path: str = "/", tls: bool = False, headers: dict[str, str] | None = None
             ) -> http.client.HTTPResponse:
    if tls:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            address, 443, timeout=5, context=tls_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3))
    else:
        conn = http.client.HTTPConnection(address, 80, timeout=5)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


# ---------------------------------------------------------------- status / network rules

def test_status_reports_running(lab: dict[str, Any]) -> None:
    assert lab["running"] is True
    assert Path(lab["inventory"]).is_file()
    assert Path(lab["credentials"]).is_file()


def test_status_names_the_lab_ca(lab: dict[str, Any]) -> None:
    # `tcmscan scan --ca-file <ca>` trusts it, so the hardened host's certificate validates
    assert lab["ca"] == CA
    ca = x509.load_pem_x509_certificate(Path(CA).read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server_cert("10.77.0.50").issuer == ca.subject


def test_inventory_and_credentials_files(lab: dict[str, Any]) -> None:
    import yaml
    inv = yaml.safe_load(Path(lab["inventory"]).read_text(encoding="utf-8"))
    assert [(a["name"], a["address"], a["zone"]) for a in inv["assets"]] == [
        ("core-switch", "10.77.0.2", "management"), ("his", "10.77.0.10", "server"),
        ("emr-db", "10.77.0.11", "server"), ("pacs", "10.77.0.20", "clinical"),
        ("modality", "10.77.0.21", "clinical"), ("hl7", "10.77.0.22", "clinical"),
        ("pump", "10.77.0.23", "clinical"), ("backup", "10.77.0.30", "server"),
        ("portal", "10.77.0.40", "internet"), ("hardened", "10.77.0.50", "server"),
        ("sm-gw", "10.77.0.60", "internet")] + [
        ("netcfg", "10.77.0.3", "management"),
        ("dc", "10.77.0.12", "server"),
        ("filesrv", "10.77.0.13", "server"),
        ("filesrv-sec", "10.77.0.14", "server"),
        ("imaging-ws", "10.77.0.24", "clinical"),
        ("imaging-sec", "10.77.0.25", "clinical"),
        ("bmc", "10.77.0.26", "management"),
        ("pacs-web", "10.77.0.27", "clinical"),
        ("pacs-web-sec", "10.77.0.28", "clinical"),
        ("appsrv", "10.77.0.32", "server"),
        ("appsrv-sec", "10.77.0.33", "server"),
        ("pg-his", "10.77.0.34", "server"),
        ("db-sec", "10.77.0.35", "server"),
        ("ward-broker", "10.77.0.36", "clinical"),
        ("broker-sec", "10.77.0.37", "clinical"),
        ("research", "10.77.0.41", "server"),
        ("research-sec", "10.77.0.42", "server")] + [   # the hostile hosts: inventoried, as a hospital lists what it owns
        (name, f"10.77.0.{70 + i}", "server")
        for i, name in enumerate(("tarpit", "drip", "flood", "reset", "garble", "absurd", "oddssh", "flapper"))]
    creds = yaml.safe_load(Path(lab["credentials"]).read_text(encoding="utf-8"))
    assert creds == {"credentials": [{"match": "10.77.0.0/24", "type": "ssh", "user": "root",
                                      "key_file": KEY, "port": 22, "sudo": False},
                                     {"match": "10.77.0.12", "type": "ldap", "user": "audit@hospital.lab",
                                      "password": "Lab#Dc-Audit-2024!x", "ca_file": CA},
                                     {"match": "10.77.0.35", "type": "db", "user": "tcmscan_audit",
                                      "password": "Lab#Db-Audit-2024!x", "port": 3306}]}
    assert Path(lab["credentials"]).stat().st_mode & 0o077 == 0


def test_no_default_route_anywhere(lab: dict[str, Any]) -> None:
    for h in lab["hosts"]:
        ns = f"lab-{h['name']}"
        v4 = subprocess.run(["ip", "-n", ns, "-4", "route", "show"], capture_output=True, text=True, check=True)
        assert v4.stdout.split("\n")[0].split()[:3] == ["10.77.0.0/24", "dev", "eth0"], ns
        assert len(v4.stdout.strip().splitlines()) == 1, (ns, v4.stdout)
        v6 = subprocess.run(["ip", "-n", ns, "-6", "route", "show"], capture_output=True, text=True, check=True)
        assert v6.stdout.strip() == "", (ns, v6.stdout)


def test_ip_forward_unchanged(lab: dict[str, Any]) -> None:
    state = json.loads(Path("/run/tcmscan-lab/state.json").read_text())
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == state["ip_forward_before"]


def test_no_resolver_in_hosts(lab: dict[str, Any]) -> None:
    out = ssh("10.77.0.10", "wc -c </etc/resolv.conf; grep '^hosts:' /etc/nsswitch.conf")
    assert out.split("\n")[0].strip() == "0"
    assert out.split("\n")[1].split() == ["hosts:", "files"]


# ---------------------------------------------------------------- TLS

def test_his_tls_legacy_only(lab: dict[str, Any]) -> None:
    v = ssl.TLSVersion
    assert handshake("10.77.0.10", tls_context(v.TLSv1, v.TLSv1)) == ("TLSv1", "ECDHE-RSA-AES128-SHA")
    assert handshake("10.77.0.10", tls_context(v.TLSv1_1, v.TLSv1_1)) == ("TLSv1.1", "ECDHE-RSA-AES128-SHA")
    assert handshake("10.77.0.10", tls_context(v.TLSv1_2, v.TLSv1_3)) is None
    # anonymous (no authentication) suite accepted: the weak-cipher plant
    assert handshake("10.77.0.10", tls_context(v.TLSv1, v.TLSv1_1, "AECDH-AES128-SHA:@SECLEVEL=0")) == (
        "TLSv1.1", "AECDH-AES128-SHA")


def test_his_certificate_weak(lab: dict[str, Any]) -> None:
    cert = server_cert("10.77.0.10")
    assert cert.public_key().key_size == 1024
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)
    assert cert.issuer == cert.subject


def test_portal_certificate_expired_no_hsts(lab: dict[str, Any]) -> None:
    cert = server_cert("10.77.0.40")
    assert cert.not_valid_after_utc == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert cert.public_key().key_size == 2048
    ctx = ssl.create_default_context(cafile=CA)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"), \
            socket.create_connection(("10.77.0.40", 443), timeout=5) as raw:
        ctx.wrap_socket(raw, server_hostname="portal")
    assert http_get("10.77.0.40", tls=True).getheader("Strict-Transport-Security") is None
    redirect = http_get("10.77.0.40", "/x", headers={"Host": "portal"})
    assert (redirect.status, redirect.getheader("Location")) == (301, "https://portal/x")
    v = ssl.TLSVersion
    assert handshake("10.77.0.40", tls_context(v.TLSv1, v.TLSv1_1)) is None


def test_hardened_tls_modern_and_valid(lab: dict[str, Any]) -> None:
    ctx = ssl.create_default_context(cafile=CA)
    for name in ("hardened", "10.77.0.50"):
        with socket.create_connection(("10.77.0.50", 443), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=name) as tls:
            assert tls.version() == "TLSv1.3"
    v = ssl.TLSVersion
    assert handshake("10.77.0.50", tls_context(v.TLSv1, v.TLSv1_1)) is None
    tls12 = handshake("10.77.0.50", tls_context(v.TLSv1_2, v.TLSv1_2))
    assert tls12 == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    assert handshake("10.77.0.50", tls_context(v.TLSv1_2, v.TLSv1_2, "AES128-SHA:AECDH-AES128-SHA:@SECLEVEL=0")) is None
    cert = server_cert("10.77.0.50")
    assert cert.public_key().key_size == 2048
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["hardened"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.77.0.50"]
    assert http_get("10.77.0.50", tls=True).getheader("Strict-Transport-Security") == (
        "max-age=31536000; includeSubDomains")


def _recv_record(address: str, hello: bytes) -> bytes:
    with socket.create_connection((address, 443), timeout=5) as s:
        s.sendall(hello)
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_sm_gw_answers_shangmi_only(lab: dict[str, Any]) -> None:
    def suite(rec: bytes) -> int:
        sid = rec[9 + 2 + 32]
        return int.from_bytes(rec[9 + 2 + 32 + 1 + sid: 9 + 2 + 32 + 3 + sid], "big")

    tls13 = _recv_record("10.77.0.60", client_hello(0x0303, [0x00C6], tls13=True))
    assert (tls13[0], tls13[5], suite(tls13)) == (22, 2, 0x00C6)
    tlcp = _recv_record("10.77.0.60", client_hello(0x0101, [0xE013, 0xE011], tls13=False))
    assert (tlcp[:3], tlcp[5], suite(tlcp)) == (b"\x16\x01\x01", 2, 0xE013)
    refused = _recv_record("10.77.0.60", client_hello(0x0303, [0x1301, 0xC02F], tls13=True))
    assert refused == b"\x15\x03\x03\x00\x02\x02\x28"
    v = ssl.TLSVersion
    assert handshake("10.77.0.60", tls_context(v.TLSv1_2, v.TLSv1_3)) is None


# ---------------------------------------------------------------- SSH

@pytest.mark.parametrize(("address", "option", "value", "accepted"), [
    ("10.77.0.2", "KexAlgorithms", "diffie-hellman-group1-sha1", True),
    ("10.77.0.2", "Ciphers", "3des-cbc", True),
    ("10.77.0.2", "MACs", "hmac-md5", True),
    ("10.77.0.2", "MACs", "hmac-sha1-96", True),
    ("10.77.0.10", "KexAlgorithms", "diffie-hellman-group14-sha1", True),
    ("10.77.0.10", "Ciphers", "aes128-cbc", True),
    ("10.77.0.10", "KexAlgorithms", "diffie-hellman-group1-sha1", False),
    ("10.77.0.50", "KexAlgorithms", "diffie-hellman-group14-sha1", False),
    ("10.77.0.50", "Ciphers", "aes128-cbc", False),
    ("10.77.0.50", "MACs", "hmac-sha1", False),
    ("10.77.0.50", "KexAlgorithms", "sntrup761x25519-sha512@openssh.com", True),
])
def test_ssh_algorithms(lab: dict[str, Any], address: str, option: str, value: str, accepted: bool) -> None:
    assert ssh_negotiates(address, option, value) is accepted


def test_core_switch_host_key_is_rsa_1024(lab: dict[str, Any]) -> None:
    t = paramiko.Transport(("10.77.0.2", 22))
    try:
        t.start_client(timeout=10)
        key = t.get_remote_server_key()
        assert (key.get_name(), key.get_bits()) == ("ssh-rsa", 1024)
    finally:
        t.close()


def test_his_root_password_login(lab: dict[str, Any]) -> None:
    assert ssh("10.77.0.10", "id -u", password="Lab#His-2024-root").strip() == "0"


def test_hardened_refuses_passwords(lab: dict[str, Any]) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        ssh("10.77.0.50", "true", password="whatever")


def test_every_host_has_its_own_identity_over_ssh(lab: dict[str, Any]) -> None:
    keys = set()
    for h in lab["hosts"]:
        out = ssh(h["address"], "hostname; cat /etc/ssh/ssh_host_*_key.pub | sha256sum")
        name, digest = out.split("\n")[:2]
        assert name == h["name"]
        keys.add(digest)
    assert len(keys) == len(lab["hosts"])


def test_his_planted_accounts_and_policy(lab: dict[str, Any]) -> None:
    shadow = dict(line.split(":", 2)[:2] for line in ssh("10.77.0.10", "cat /etc/shadow").splitlines())
    assert shadow["hisadmin"] == "$1$hislab01$rJTVvqED8NHNwYGJv1hDL."
    assert shadow["nurse"] == ""
    uid0 = [ln.split(":")[0] for ln in ssh("10.77.0.10", "cat /etc/passwd").splitlines() if ln.split(":")[2] == "0"]
    assert uid0 == ["root", "toor"]
    defs = ssh("10.77.0.10", "grep -E '^PASS_(MAX_DAYS|MIN_LEN)' /etc/login.defs").split()
    assert defs == ["PASS_MAX_DAYS", "99999", "PASS_MIN_LEN", "6"]
    pam = ssh("10.77.0.10", "cat /etc/pam.d/common-password /etc/pam.d/common-auth")
    assert "pam_pwquality" not in pam and "pam_faillock" not in pam
    assert ssh("10.77.0.10", "test -e /usr/sbin/rsyslogd && echo present || echo absent").strip() == "absent"
    assert ssh("10.77.0.10", "grep -rl TMOUT /etc/profile /etc/profile.d /etc/bash.bashrc || true").strip() == ""


def test_his_planted_stale_account_and_file_modes(lab: dict[str, Any]) -> None:
    # olddoc: a personal account (UID >= 1000, bash, SHA-512 password) unused for 200 days
    entry = ssh("10.77.0.10", "getent passwd olddoc").strip().split(":")
    assert int(entry[2]) >= 1000 and entry[6] == "/bin/bash"
    shadow = ssh("10.77.0.10", "getent shadow olddoc").strip().split(":")
    assert shadow[1].startswith("$6$olddoclab$")
    today = int(ssh("10.77.0.10", "date +%s")) // 86400
    assert today - int(shadow[2]) == 200
    last = ssh("10.77.0.10", "lastlog -u olddoc").splitlines()[1].split()
    assert last[1:3] == ["pts/0", "10.77.0.1"]
    when = dt.datetime.strptime(" ".join(last[3:]), "%a %b %d %H:%M:%S %z %Y")
    assert 199 <= (dt.datetime.now(dt.UTC) - when).days <= 200
    modes = ssh("10.77.0.10", "stat -c '%n %a %U' /etc/his-app.conf /etc/shadow").splitlines()
    assert modes == ["/etc/his-app.conf 666 root", "/etc/shadow 644 root"]
    assert ssh("10.77.0.10", "find /etc -xdev -type f -perm -0002").split() == ["/etc/his-app.conf"]
    # chrony and clamav are installed in the shared root but nothing runs them here
    assert ssh("10.77.0.10", "pgrep -x 'chronyd|clamd|freshclam' || echo none").strip() == "none"


def test_hardened_time_sync_lab_only(lab: dict[str, Any]) -> None:
    assert ssh("10.77.0.50", "pgrep -ax chronyd").split()[1:] == ["chronyd", "-x", "-f", "/etc/chrony/chrony.conf"]
    conf = [ln for ln in ssh("10.77.0.50", "cat /etc/chrony/chrony.conf").splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert conf == ["server 10.77.0.1 iburst", "cmdport 0"]      # no pool, no DNS name, no include dirs
    # every UDP socket chronyd holds points at the lab gateway only
    peers = {ln.split()[4] for ln in ssh("10.77.0.50", "ss -Hunp").splitlines() if "chronyd" in ln}
    assert peers <= {"10.77.0.1:123"}
    assert ssh("10.77.0.50", "cat /etc/resolv.conf").strip() == ""


# Runs ON hardened: writes the EICAR test file, asks clamd (PING, SCAN) over its local socket.
CLAMD_PROBE = r"""
import os, socket, tempfile
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
fd, path = tempfile.mkstemp()
os.write(fd, eicar); os.close(fd); os.chmod(path, 0o644)
for cmd in (b"zPING\0", b"zSCAN " + path.encode() + b"\0"):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/clamav/clamd.ctl")
    s.sendall(cmd)
    print(s.recv(300).rstrip(b"\0").decode())
    s.close()
os.unlink(path)
"""


def test_hardened_antimalware_running_with_fresh_local_signatures(lab: dict[str, Any]) -> None:
    assert ssh("10.77.0.50", "pgrep -x clamd >/dev/null && echo running").strip() == "running"
    assert ssh("10.77.0.50", "pgrep -x 'freshclam|clamonacc' || echo none").strip() == "none"
    assert ssh("10.77.0.50", "ls /var/lib/clamav").split() == ["lab.hdb"]
    age = ssh("10.77.0.50", "echo $(( $(date +%s) - $(stat -c %Y /var/lib/clamav/lab.hdb) ))")
    assert int(age) < 86400 * 2
    # clamd answers on its local socket only and detects the EICAR test file with the lab signature
    out = ssh("10.77.0.50", "echo " + base64.b64encode(CLAMD_PROBE.encode()).decode() + " | base64 -d | python3 -")
    lines = out.splitlines()
    assert lines[0] == "PONG"
    assert lines[1].endswith(": EICAR-Test-File.UNOFFICIAL FOUND")
    assert [ln for ln in ssh("10.77.0.50", "ss -Htlnp").splitlines() if "clamd" in ln] == []


def test_hardened_compliant_files(lab: dict[str, Any]) -> None:
    defs = ssh("10.77.0.50", "grep -E '^PASS_(MAX_DAYS|MIN_LEN)' /etc/login.defs").split()
    assert defs == ["PASS_MAX_DAYS", "90", "PASS_MIN_LEN", "12"]
    assert "minclass=3" in ssh("10.77.0.50", "cat /etc/pam.d/common-password")
    assert "pam_faillock.so preauth silent deny=5 unlock_time=900" in ssh("10.77.0.50", "cat /etc/pam.d/common-auth")
    assert ssh("10.77.0.50", "cat /etc/profile.d/tmout.sh").splitlines()[1] == "TMOUT=900"
    assert "*.* @@10.77.0.30:514" in ssh("10.77.0.50", "cat /etc/rsyslog.d/50-remote.conf")
    assert ssh("10.77.0.50", "pgrep -x rsyslogd >/dev/null && echo running").strip() == "running"
    sshd = ssh("10.77.0.50", "sshd -T")
    assert "allowusers root@10.77.0.1" in sshd.splitlines()
    assert "passwordauthentication no" in sshd.splitlines()
    assert "clientaliveinterval 600" in sshd.splitlines()


def test_hardened_backups(lab: dict[str, Any]) -> None:
    record = json.loads(ssh("10.77.0.50", "cat /var/lib/tcmscan/restore-tests.json"))
    assert [r["result"] for r in record] == ["ok"]
    assert dt.date.fromisoformat(record[0]["date"]) >= dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert ssh("10.77.0.50", "cd /srv/lis-data && sha256sum -c --quiet /var/backups/lis/SHA256SUMS && echo ok"
               ).strip() == "ok"
    snaps = json.loads(ssh("10.77.0.50", "RESTIC_PASSWORD_FILE=/root/.restic-password "
                                         "restic -r /var/backups/restic snapshots --json"))
    # one made at `lab up`, plus one per later run of the daily job (test below runs it once)
    assert [s["tags"] for s in snaps][:1] == [["lis"]] and {tuple(s["tags"]) for s in snaps} == {("lis",)}
    # off-host copy: an encrypted restic repository on the backup host
    assert ssh("10.77.0.30", "ls /srv/restic/hardened").split() == ["config", "data", "index", "keys",
                                                                    "locks", "snapshots"]


def test_hardened_backup_repo_append_only_and_job_reruns(lab: dict[str, Any]) -> None:
    repo = "/var/backups/restic"
    out = ssh("10.77.0.50", f"lsattr -d {repo} {repo}/config {repo}/data {repo}/snapshots "
                            f"$(find {repo}/snapshots {repo}/keys -type f)")
    append_only = {path: "a" in attrs for attrs, path in (ln.split() for ln in out.splitlines())}
    files = [p for p in append_only if p.startswith((f"{repo}/snapshots/", f"{repo}/keys/"))]
    assert {p: append_only[p] for p in append_only if p not in files} == {
        repo: True, f"{repo}/config": True, f"{repo}/data": False, f"{repo}/snapshots": False}
    assert files and all(append_only[p] for p in files)
    # production root cannot delete or rewrite history ...
    refused = ssh("10.77.0.50", f"f=$(find {repo}/snapshots -type f | head -1); "
                                f"rm -f $f 2>/dev/null || echo rm-refused; "
                                f"(: >$f) 2>/dev/null || echo truncate-refused; "
                                f"mv {repo}/config {repo}/config.x 2>/dev/null || echo mv-refused")
    assert refused.split() == ["rm-refused", "truncate-refused", "mv-refused"]
    # ... and the daily job (cron.d/lis-backup) still works on the protected repository: restic writes
    # a temporary file and renames it, which an append-only *directory* would refuse.
    before = ssh("10.77.0.50", f"RESTIC_PASSWORD_FILE=/root/.restic-password restic -r {repo} snapshots --json")
    ssh("10.77.0.50", "/usr/local/sbin/lis-backup.sh")
    after = ssh("10.77.0.50", f"RESTIC_PASSWORD_FILE=/root/.restic-password restic -r {repo} snapshots --json")
    old_ids = [s["id"] for s in json.loads(before)]
    new_snaps = json.loads(after)
    assert [s["id"] for s in new_snaps][:len(old_ids)] == old_ids
    assert [s["tags"] for s in new_snaps[len(old_ids):]] == [["lis"]]
    assert ssh("10.77.0.50", f"find {repo} -name '*-tmp-*'") == ""


def test_emr_backups_stale_plain_local(lab: dict[str, Any]) -> None:
    out = ssh("10.77.0.11", "cd /var/backups/emr && for f in *; do echo $f $(stat -c %Y $f); done; ls")
    lines = out.splitlines()
    entries = [ln.split() for ln in lines if len(ln.split()) == 2]
    assert [e[0].endswith(".sql.gz") for e in entries] == [True, True, True]
    now = dt.datetime.now(dt.UTC).timestamp()
    assert all(now - int(e[1]) > 24 * 3600 for e in entries)
    assert "TEST^PATIENT1" in ssh("10.77.0.11", "zcat $(ls /var/backups/emr/*.sql.gz | head -1)")
    assert ssh("10.77.0.11", "ls /var/backups/emr").split() == [e[0] for e in entries]  # no SHA256SUMS


# ---------------------------------------------------------------- other services

def test_snmp_communities(lab: dict[str, Any]) -> None:
    def snmp(tool: str, community: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool, "-v2c", "-c", community, "-t", "2", "-r", "0", "-On", "10.77.0.2", *args],
                              capture_output=True, text=True, timeout=20, check=False)

    got = snmp("snmpget", "public", ".1.3.6.1.2.1.1.5.0")
    assert got.stdout.strip() == '.1.3.6.1.2.1.1.5.0 = STRING: "core-switch"'
    # write with private works (on an object net-snmp lets us write back)
    wrote = snmp("snmpset", "private", ".1.3.6.1.2.1.1.6.0", "s", "lab-rack-A1")
    assert wrote.returncode == 0, wrote.stderr
    refused = snmp("snmpset", "public", ".1.3.6.1.2.1.1.6.0", "s", "x")
    assert refused.returncode != 0


def test_telnet_answers(lab: dict[str, Any]) -> None:
    for address in ("10.77.0.2", "10.77.0.23"):
        with socket.create_connection((address, 23), timeout=5) as s:
            assert s.recv(64)[:1] == b"\xff"  # telnet IAC option negotiation


def test_redis_without_auth(lab: dict[str, Any]) -> None:
    with socket.create_connection(("10.77.0.10", 6379), timeout=5) as s:
        s.sendall(b"PING\r\nCONFIG GET protected-mode\r\n")
        data = b""
        while data.count(b"\r\n") < 6:
            data += s.recv(4096)
    assert data == b"+PONG\r\n*2\r\n$14\r\nprotected-mode\r\n$2\r\nno\r\n"


def test_mariadb_default_account(lab: dict[str, Any]) -> None:
    out = subprocess.run(["mariadb", "-h", "10.77.0.11", "-u", "admin", "-padmin", "-N", "-B",
                          "-e", "SELECT name FROM emr.patient ORDER BY id"],
                         capture_output=True, text=True, timeout=20, check=True)
    assert out.stdout.split() == ["TEST^PATIENT1", "TEST^PATIENT2", "TEST^PATIENT3"]


def test_pacs_any_ae_and_cfind(lab: dict[str, Any]) -> None:
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind

    ae = AE(ae_title="NOT_KNOWN")
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("10.77.0.20", 104, ae_title="ANY_CALLED")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientName = "*"
    query.PatientID = ""
    names = [str(ds.PatientName) for st, ds in assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind)
             if st and st.Status == 0xFF00]
    assoc.release()
    assert names == ["TEST^PATIENT1", "TEST^PATIENT2", "TEST^PATIENT3"]


def test_modality_old_dcmtk_identity(lab: dict[str, Any]) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(Verification)
    assoc = ae.associate("10.77.0.21", 11112, ae_title="WHATEVER")
    assert assoc.is_established
    ident = (assoc.acceptor.implementation_version_name, assoc.acceptor.implementation_class_uid)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert ident == ("OFFIS_DCMTK_362", "1.2.276.0.7230010.3.0.3.6.2")


def test_hl7_acks_anything(lab: dict[str, Any]) -> None:
    msg = b"MSH|^~\\&|TCMSCAN|LAB|HL7ENGINE|LAB|20240101000000||ADT^A01|CTRL42|T|2.5\rEVN|A01|20240101000000\r"
    with socket.create_connection(("10.77.0.22", 2575), timeout=5) as s:
        s.sendall(b"\x0b" + msg + b"\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            data += s.recv(4096)
    segments = data.strip(b"\x0b\x1c\r").split(b"\r")
    assert segments[1] == b"MSA|AA|CTRL42|Message accepted"
    assert segments[0].split(b"|")[8] == b"ACK^A01^ACK"


def test_rsync_anonymous_listing(lab: dict[str, Any]) -> None:
    modules = subprocess.run(["rsync", "rsync://10.77.0.30/"], capture_output=True, text=True, timeout=20, check=True)
    assert [ln.split()[0] for ln in modules.stdout.splitlines()] == ["backups"]
    files = subprocess.run(["rsync", "-r", "rsync://10.77.0.30/backups/"], capture_output=True, text=True,
                           timeout=20, check=True)
    names = sorted(ln.split()[-1] for ln in files.stdout.splitlines() if ln.startswith("-"))
    assert [n.split("/")[0] for n in names] == ["emr"] * 3 + ["his"] * 3


def test_pump_anonymous_ftp(lab: dict[str, Any]) -> None:
    with ftplib.FTP("10.77.0.23", timeout=10) as ftp:
        assert ftp.login().startswith("230")
        assert ftp.nlst("pub") == ["pub/pump-events.log"]


def test_pump_http_console_default_login(lab: dict[str, Any]) -> None:
    import base64
    assert http_get("10.77.0.23").status == 401
    good = base64.b64encode(b"admin:admin").decode()
    assert http_get("10.77.0.23", headers={"Authorization": f"Basic {good}"}).status == 200
    bad = base64.b64encode(b"admin:wrong").decode()
    assert http_get("10.77.0.23", headers={"Authorization": f"Basic {bad}"}).status == 401


def test_up_twice_is_harmless(lab: dict[str, Any]) -> None:
    from lab import manager
    before = json.loads(Path("/run/tcmscan-lab/state.json").read_text())
    again = manager.up(progress=lambda _m: None)
    after = json.loads(Path("/run/tcmscan-lab/state.json").read_text())
    assert again == lab
    assert after["hosts"] == before["hosts"]
