"""A hostile or strange SSH server never puts a library's traceback on the terminal, in a log or in the store.

paramiko reports a failed handshake from its own Transport thread through the `paramiko.transport` logger
("Exception (client): ..." and then the traceback, a record per line), which logging's last resort printed into
the scan's output. Real servers on loopback addresses of their own, scanned by the real `tcmscan scan` and
`tcmscan run`: an OpenSSH sshd offering only a cipher paramiko lacks, a server whose KEXINIT claims a 4 GiB
name-list, a server that follows its banner with zeros. What paramiko said becomes the attempt's detail
(scanner/engine/library_logs.py)."""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scanner.store import Store
from tests.helpers import ROOT, tcmscan
from tests.loopback import Scripted, stop_process, wait_port

SSHD = "/usr/sbin/sshd"
NOT_IN_OUTPUT = ("Traceback", "Exception (client)", 'File "', "paramiko.ssh_exception")
JUNK_LIMIT = 1 << 20          # bytes a hostile server sends at most: its loop ends by itself
# The KEXINIT of the second server: a fixed cookie, then a kex name-list claiming 0xFFFFFFF0 bytes.
BAD_KEXINIT = bytes([20]) + b"\x11" * 16 + struct.pack(">I", 0xFFFFFFF0) + b"x" * 50
# A KEXINIT whose kex name-list is not UTF-8: paramiko's thread dies of a UnicodeDecodeError (no SSHException),
# which start_client re-raises as it is.
NOT_UTF8_KEXINIT = bytes([20]) + b"\x11" * 16 + struct.pack(">I", 4) + b"\xff\xfe\xfd\xfc" + b"\0" * 40


def _need_root() -> None:
    if os.geteuid() != 0 or not Path(SSHD).exists():
        why = "an OpenSSH sshd needs root and /usr/sbin/sshd"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def _addresses() -> list[str]:
    base = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
    return [f"{base}.10", f"{base}.11", f"{base}.12", f"{base}.13"]


def _free_port(addresses: list[str]) -> int:
    """A port free on every address (nmap then probes one extra port, the same on each host)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        try:
            for a in addresses[1:]:
                with socket.socket() as s:
                    s.bind((a, port))
            return port
        except OSError:
            continue
    raise OSError("no common free port")


def _packet(payload: bytes) -> bytes:
    pad = 8 - (len(payload) + 5) % 8 + 8
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + b"\0" * pad


def _bad_kexinit(conn: socket.socket, _n: int, _first: bytes) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    conn.recv(256)
    conn.sendall(_packet(BAD_KEXINIT))
    for _ in range(JUNK_LIMIT // 512):
        conn.sendall(bytes(range(256)) * 2)

NOT_UTF8_DETAIL = ("SSH handshake failed: malformed reply (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff "
                   "in position 0: invalid start byte)")


def _not_utf8_kexinit(conn: socket.socket, _n: int, _first: bytes) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    conn.recv(256)
    conn.sendall(_packet(NOT_UTF8_KEXINIT))
    conn.recv(4096)


def _zeros(conn: socket.socket, _n: int, _first: bytes) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    conn.recv(256)
    for _ in range(JUNK_LIMIT // 4096):
        conn.sendall(b"\0" * 4096)


@pytest.fixture(scope="module")
def hostile_ssh(tmp_path_factory):
    """Four SSH-speaking servers on four loopback addresses, one port, and credentials for all three."""
    _need_root()
    d = tmp_path_factory.mktemp("hostile-ssh")
    addresses = _addresses()
    port = _free_port(addresses)
    for name in ("hostkey", "clientkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=30)
    # chacha20-poly1305 is the one cipher of OpenSSH's that paramiko does not implement
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress {addresses[0]}\nHostKey {d}/hostkey\nUsePAM no\nUseDNS no\n"
        f"PidFile {d}/sshd.pid\nCiphers chacha20-poly1305@openssh.com\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    servers = [Scripted(_bad_kexinit, addresses[1], port, timeout=10),
               Scripted(_zeros, addresses[2], port, timeout=10),
               Scripted(_not_utf8_kexinit, addresses[3], port, timeout=10)]
    creds = d / "credentials.yaml"
    creds.write_text("credentials:\n" + "".join(
        f"  - {{match: {a}, type: ssh, user: root, key_file: {d}/clientkey, port: {port}}}\n" for a in addresses))
    creds.chmod(0o600)
    try:
        wait_port(addresses[0], port)
        yield {"dir": d, "addresses": addresses, "port": port, "credentials": str(creds)}
    finally:
        stop_process(sshd)
        for s in servers:
            s.close()


def _assert_clean(text: str) -> None:
    for bad in NOT_IN_OUTPUT:
        assert bad not in text, f"{bad!r} reached the output:\n{text}"


def test_scan_of_hostile_ssh_servers_prints_no_traceback(hostile_ssh):
    h = hostile_ssh
    db = h["dir"] / "scan.db"
    a, b, c, d = h["addresses"]
    args = ["scan", a, b, c, d, "--no-ping", "--ports", str(h["port"]), "--credentials", h["credentials"],
            "--known-hosts", str(h["dir"] / "known_hosts"), "--checks", "host", "--checks", "ssh"]
    for x in h["addresses"]:
        args += ["--scope", f"{x}/32"]
    p = tcmscan(*args, db=db)
    assert p.returncode == 1, p.stderr
    _assert_clean(p.stdout + p.stderr)
    scan_id = p.stdout.strip()
    # stderr is the scan's own status lines and nothing else
    for line in p.stderr.splitlines():
        assert re.match(r"(scan \S+ started |scan \S+ done: |discovery: |attempts: |note: )", line), line

    store = Store(db)
    got = {(r["address"], r["check_id"]): (r["status"], r["reason"], r["detail"])
           for r in store.attempts(scan_id) if r["port"] in (None, h["port"])}
    assert got == {
        (a, "host.host-key"): ("error", "protocol",
                               "SSH handshake failed: Incompatible ssh server (no acceptable ciphers)"),
        (a, "host.snapshot"): ("error", "protocol",
                               "SSH handshake failed: Incompatible ssh server (no acceptable ciphers)"),
        (a, "ssh.kex"): ("completed", "", ""),
        (b, "host.host-key"): ("error", "protocol",
                               "SSH handshake failed: Incompatible ssh peer (no acceptable kex algorithm)"),
        (b, "host.snapshot"): ("error", "protocol",
                               "SSH handshake failed: Incompatible ssh peer (no acceptable kex algorithm)"),
        (b, "ssh.kex"): ("error", "protocol", "string of 4294967280 bytes exceeds 8192"),
        (c, "host.host-key"): ("error", "protocol", "SSH handshake failed: Invalid packet blocking"),
        (c, "host.snapshot"): ("error", "protocol", "SSH handshake failed: Invalid packet blocking"),
        (c, "ssh.kex"): ("error", "protocol", "bad packet framing (length 0, padding 0)"),
        (d, "host.host-key"): ("error", "protocol", NOT_UTF8_DETAIL),
        (d, "host.snapshot"): ("error", "protocol", NOT_UTF8_DETAIL),
        (d, "ssh.kex"): ("error", "protocol", "non-ASCII algorithm name list"),
    }
    # every rule reading the host's SSH session says "not assessed" there, never "passed"
    verdicts = {(r.address, r.rule_id): r.status for r in store.rule_results(scan_id)}
    for host in (a, b, c, d):
        assert verdicts[(host, "accounts.empty-password")] == "not_assessed"
    # nothing in the store holds a traceback either
    _assert_clean(tcmscan("attempts", scan_id, "--format", "json", db=db, check=True).stdout)


def test_scheduled_run_logs_no_traceback(hostile_ssh):
    """`tcmscan run JOB -v` logs through the root logger to stderr: paramiko's records never reach it."""
    h = hostile_ssh
    d = h["dir"]
    a = h["addresses"][0]
    cfg = d / "jobs.toml"
    cfg.write_text(textwrap.dedent(f"""\
        data_dir = "{d}/state"
        [[job]]
        name = "hostile"
        targets = ["{a}"]
        scope = ["{a}/32"]
        checks = ["host"]
        ports = [{h["port"]}]
        ping = false
        credentials = "{h["credentials"]}"
        known_hosts = "{d}/state/known_hosts"
        [job.report]
        formats = ["json"]
        langs = ["en"]
        """))
    p = tcmscan("run", "hostile", "--config", str(cfg), "-v")
    assert p.returncode == 0, p.stderr
    _assert_clean(p.stdout + p.stderr)


LIBRARY_SCRIPT = r"""
import logging, sys, threading
from scanner.engine import library_logs

logging.basicConfig(filename=sys.argv[1], level=logging.DEBUG)      # as a job run's log would be
library_logs.install()
log = logging.getLogger("paramiko.transport")

def transport_thread():                      # what paramiko's Transport thread does on a failed handshake
    log.error("Exception (client): Incompatible ssh server (no acceptable ciphers)")
    for line in ["Traceback (most recent call last):", '  File "t.py", line 1, in run', "    x()",
                 "paramiko.ssh_exception.IncompatiblePeer: Incompatible ssh server (no acceptable ciphers)", ""]:
        log.error(line)
    raise ValueError("thread died \x1b[2J")

with library_logs.capture() as cap:
    t = threading.Thread(target=transport_thread, name="paramiko-ish")
    t.start()
    t.join()
print(cap.annotate("SSH handshake failed"))
# outside any attempt: one line each on stderr
log.error("Exception (client): stray \x9b2J")
log.error("Traceback (most recent call last):")
log.error('  File "t.py", line 1, in run')
log.error("ValueError: stray")
t = threading.Thread(target=lambda: 1 / 0, name="orphan")
t.start()
t.join()
"""


def test_library_records_and_dying_threads_become_one_line(tmp_path):
    log = tmp_path / "job.log"
    p = subprocess.run([sys.executable, "-c", LIBRARY_SCRIPT, str(log)], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    # paramiko's "Exception (client): " wording is dropped: the store and the terminal never carry it
    assert p.stdout == ("SSH handshake failed (paramiko.transport: Incompatible ssh server "
                        "(no acceptable ciphers); thread paramiko-ish died: ValueError: thread died \\x1b[2J)\n")
    assert p.stderr == ("tcmscan: warning: paramiko.transport: stray \\x9b2J\n"
                        "tcmscan: warning: thread orphan died: ZeroDivisionError: division by zero\n")
    assert log.read_text() == ""
