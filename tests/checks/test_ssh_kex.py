"""ssh.kex and the crypto.ssh.* rules against real OpenSSH servers on loopback addresses of their own.

Three sshd configurations copy the lab's plants: core-switch (legacy algorithms, RSA-1024 host key), his (SHA-1
key exchange, CBC ciphers) and hardened (nothing to find). Scans go through the real CLI and SQLite file.
The servers listen on 22, or on a free port passed to the scan (--ports) when 22 is taken on this machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import observations, scan, tcmscan
from tests.loopback import pick_port, wait_port

SSHD = "/usr/sbin/sshd"
COMMON = "UsePAM no\nUseDNS no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
CONFIGS = {
    # address: (label, key specs [(type, bits)], sshd_config lines)
    "127.44.5.2": ("core-switch", [("rsa", 1024)],
                   "HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256,ssh-rsa\nRequiredRSASize 1024\n"
                   "KexAlgorithms diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,"
                   "diffie-hellman-group-exchange-sha1,curve25519-sha256\n"
                   "Ciphers 3des-cbc,aes128-cbc,aes128-ctr,aes256-ctr\n"
                   "MACs hmac-md5,hmac-sha1-96,hmac-sha1,hmac-sha2-256\n"),
    "127.44.5.10": ("his", [("ed25519", 256), ("rsa", 3072)],
                    "HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256\n"
                    "KexAlgorithms curve25519-sha256,diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1\n"
                    "Ciphers aes128-ctr,aes256-ctr,aes128-cbc,aes256-cbc\n"
                    "MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com\n"),
    "127.44.5.50": ("hardened", [("ed25519", 256)],
                    "HostKeyAlgorithms ssh-ed25519\n"
                    "KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org\n"
                    "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
                    "aes256-ctr,aes192-ctr,aes128-ctr\n"
                    "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com\n"),
}


@dataclass
class Sshd:
    address: str
    label: str
    proc: subprocess.Popen
    fingerprints: dict[str, tuple[int, str]]     # key type -> (bits, SHA256:...)
    port: int


def start_sshd(tmp: Path, address: str, keys: list[tuple[str, int]], lines: str, port: int = 22) -> Sshd:
    """A real OpenSSH sshd in the foreground (-D) with its own config and host keys; never the system service."""
    tmp.mkdir(parents=True, exist_ok=True)
    fps: dict[str, tuple[int, str]] = {}
    hostkeys = ""
    for ktype, bits in keys:
        f = tmp / f"host_{ktype}_{bits}"
        if not f.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", ktype, "-b", str(bits), "-N", "", "-f", str(f)], check=True)
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{f}.pub"], check=True,
                             capture_output=True, text=True).stdout.split()
        fps[{"rsa": "ssh-rsa", "ed25519": "ssh-ed25519", "ecdsa": "ecdsa-sha2-nistp256"}[ktype]] = (int(out[0]), out[1])
        hostkeys += f"HostKey {f}\n"
    cfg = tmp / "sshd_config"
    cfg.write_text(f"Port {port}\nListenAddress {address}\n{hostkeys}{lines}{COMMON}PidFile none\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(address, port)
    return Sshd(address, "", proc, fps, port)


@pytest.fixture(scope="session")
def sshds(tmp_path_factory):
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        pytest.skip("needs openssh-server (Debian package) for /usr/sbin/sshd")
    port = pick_port(list(CONFIGS), 22)
    started = []
    try:
        for address, (label, keys, lines) in CONFIGS.items():
            s = start_sshd(tmp_path_factory.mktemp(label), address, keys, lines, port)
            s.label = label
            started.append(s)
        yield {s.label: s for s in started}
    finally:
        for s in started:
            s.proc.kill()
            s.proc.wait()


@pytest.fixture(scope="module")
def ssh_scan(sshds, tmp_path_factory):
    db = tmp_path_factory.mktemp("sshscan") / "scan.db"
    port = sshds["his"].port
    scan_id, found = scan(list(CONFIGS), scope=["127.44.5.0/24"], db=db, checks=["ssh"],
                          extra=["--no-ping", "--ports", str(port)])
    # Only our servers' port: an sshd of another process listening on every address (*:22) shows on ours too.
    return sshds, found, {o["address"]: o for o in observations(db, scan_id)
                          if o["check_id"] == "ssh.kex" and o["port"] == port}, db


def test_observations_are_the_servers_lists_in_order(ssh_scan):
    sshds, _, obs, _ = ssh_scan
    assert set(obs) == set(CONFIGS)
    cs = obs["127.44.5.2"]["data"]
    assert obs["127.44.5.2"]["port"] == sshds["core-switch"].port and obs["127.44.5.2"]["key"] == "algorithms"
    assert cs["protocol"] == "2.0" and cs["banner"].startswith("SSH-2.0-OpenSSH_9.2")
    # OpenSSH appends its strict-kex marker (Terrapin countermeasure) to the configured list.
    assert cs["kex"] == ["diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1",
                         "diffie-hellman-group-exchange-sha1", "curve25519-sha256", "kex-strict-s-v00@openssh.com"]
    assert cs["host_key"] == ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    assert cs["ciphers"] == ["3des-cbc", "aes128-cbc", "aes128-ctr", "aes256-ctr"]
    assert cs["macs"] == ["hmac-md5", "hmac-sha1-96", "hmac-sha1", "hmac-sha2-256"]
    assert cs["compression"] == ["none", "zlib@openssh.com"]
    assert cs["ciphers_s2c"] == cs["ciphers"] and cs["macs_s2c"] == cs["macs"]
    bits, fp = sshds["core-switch"].fingerprints["ssh-rsa"]
    assert cs["host_keys"] == [{"type": "ssh-rsa", "bits": 1024, "fingerprint_sha256": fp}] and bits == 1024

    his = obs["127.44.5.10"]["data"]
    assert his["host_key"] == ["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"]
    assert his["host_keys"] == [
        {"type": t, "bits": sshds["his"].fingerprints[t][0], "fingerprint_sha256": sshds["his"].fingerprints[t][1]}
        for t in ("ssh-ed25519", "ssh-rsa")]
    hard = obs["127.44.5.50"]["data"]
    assert hard["kex"] == ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org",
                           "kex-strict-s-v00@openssh.com"]
    assert hard["macs"] == ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
                            "umac-128-etm@openssh.com"]
    assert hard["host_keys"] == [{"type": "ssh-ed25519", "bits": 256,
                                  "fingerprint_sha256": sshds["hardened"].fingerprints["ssh-ed25519"][1]}]


def test_findings_exact(ssh_scan):
    sshds, found, _, _ = ssh_scan
    port = sshds["his"].port
    found = [f for f in found if f["port"] == port]
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        ("127.44.5.2", "crypto.ssh.weak-kex", port, "high"),
        ("127.44.5.2", "crypto.ssh.weak-cipher", port, "high"),
        ("127.44.5.2", "crypto.ssh.weak-mac", port, "high"),
        ("127.44.5.2", "crypto.ssh.weak-host-key", port, "high"),
        ("127.44.5.10", "crypto.ssh.weak-kex", port, "high"),
        ("127.44.5.10", "crypto.ssh.discouraged-cipher", port, "medium"),
    }
    ev = {(f["address"], f["rule_id"]): f["evidence"] for f in found}
    assert ev[("127.44.5.2", "crypto.ssh.weak-host-key")]["fail"] == ["ssh-rsa"]
    assert ev[("127.44.5.2", "crypto.ssh.weak-host-key")]["small_keys"] == ["ssh-rsa 1024"]
    assert ev[("127.44.5.2", "crypto.ssh.weak-mac")]["fail"] == ["hmac-md5", "hmac-sha1-96", "hmac-sha1"]
    assert ev[("127.44.5.10", "crypto.ssh.weak-kex")]["fail"] == ["diffie-hellman-group14-sha1",
                                                                  "diffie-hellman-group-exchange-sha1"]
    assert ev[("127.44.5.10", "crypto.ssh.discouraged-cipher")]["warn"] == ["aes128-cbc", "aes256-cbc"]


def test_verdicts_per_rule(ssh_scan):
    """Every crypto.ssh rule is assessed on every server: passed where nothing fired (never 'not_assessed')."""
    from scanner.store import Store

    _, found, _, db = ssh_scan
    scan_id = json.loads(tcmscan("scans", "--format", "json", db=db, check=True).stdout)[0]["id"]
    results = {(r.address, r.rule_id): r.status for r in Store(db).rule_results(scan_id)
               if r.rule_id.startswith("crypto.ssh.")}
    assert {r for _, r in results} == {"crypto.ssh.protocol-1", *(f"crypto.ssh.{w}-{x}" for w in ("weak", "discouraged")
                                                                  for x in ("kex", "cipher", "mac", "host-key"))}
    assert {h for h, _ in results} == set(CONFIGS)
    failed = {(f["address"], f["rule_id"]) for f in found}
    for key, status in results.items():
        assert status == ("failed" if key in failed else "passed"), key
