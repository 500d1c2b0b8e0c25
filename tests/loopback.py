"""Real services on loopback addresses of their own (127.0.0.x), started and stopped by the tests."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path


class Listener:
    """A TCP listener that sends `banner` to each client and closes (or stays silent when banner is None)."""

    def __init__(self, address: str, port: int, banner: bytes | None = None, hold: float = 0.05) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.banner = banner
        self.hold = hold
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            if self.banner is not None:
                conn.sendall(self.banner)
            time.sleep(self.hold)
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self._stop = True
        try:
            # shutdown wakes the thread blocked in accept(); close alone leaves the port answering once more
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ScriptedServer:
    """A real TCP server on a loopback address of its own that answers each connection with
    `behaviour(conn, stop)`; with `read_first` it first reads the client's opening bytes."""

    def __init__(self, address: str, port: int, behaviour, read_first: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(8)
        self.behaviour = behaviour
        self.read_first = read_first
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            if self.read_first:
                conn.settimeout(5)
                conn.recv(4096)
            self.behaviour(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def wait_port(address: str, port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{address}:{port} did not come up")


def start_sshd(tmp: Path, address: str, port: int = 22) -> subprocess.Popen:
    key = tmp / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cfg = tmp / "sshd_config"
    cfg.write_text(f"Port {port}\nListenAddress {address}\nHostKey {key}\nUsePAM no\nUseDNS no\n"
                   f"PidFile {tmp / 'sshd.pid'}\nPermitRootLogin no\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_port(address, port)
    return p


def start_tls(tmp: Path, address: str, port: int = 443) -> subprocess.Popen:
    key, cert = tmp / "tls.key", tmp / "tls.crt"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "30", "-subj", "/CN=loopback.test"], check=True,
                       capture_output=True)
    p = subprocess.Popen(["openssl", "s_server", "-quiet", "-accept", f"{address}:{port}", "-cert", str(cert),
                          "-key", str(key), "-www"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(address, port)
    return p


def wildcard_ports() -> set[int]:
    """TCP ports some other process on this machine listens on for every address (they show on any 127.x)."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        if host in ("0.0.0.0", "*", "[::]", "[::ffff:0.0.0.0]"):
            ports.add(int(port))
    return ports
