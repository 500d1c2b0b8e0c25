"""Real services on loopback addresses of their own (127.0.0.x), started and stopped by the tests."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import random
import signal
import socket
import socketserver
import subprocess
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

Talk = Callable[[socket.socket, int, bytes], object]


class Scripted:
    """A real TCP server on a loopback address that plays a script per connection: the n-th client (from 1)
    gets `talk(conn, n, first)`, where `first` is the client's opening bytes (up to `read_first` bytes, read
    before the script starts; b"" when not asked for or when the client sent nothing in time). `timeout`
    bounds every socket call of the conversation (None: blocking). `stop` is set by close(), so a script
    that waits on it ends with the test. A client hanging up mid-script is its right: OSError ends the talk.
    Port 0 picks a free one (`port` tells which)."""

    def __init__(self, talk: Talk, address: str, port: int = 0, *, read_first: int = 0,
                 timeout: float | None = None, backlog: int = 64) -> None:
        self.talk = talk
        self.read_first = read_first
        self.timeout = timeout
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(backlog)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn, self.connections), daemon=True).start()

    def _talk(self, conn: socket.socket, n: int) -> None:
        try:
            conn.settimeout(self.timeout)
            first = b""
            if self.read_first:
                try:
                    first = conn.recv(self.read_first)
                except OSError:
                    first = b""         # a client that says nothing first still meets the script
            self.talk(conn, n, first)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.stop.set()
        # shutdown wakes the thread blocked in accept(); close alone leaves the port answering once more
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=3)

    def __enter__(self) -> Scripted:
        return self

    def __exit__(self, *_a: object) -> None:
        self.close()


class Listener(Scripted):
    """A TCP listener that sends `banner` to each client and closes (or stays silent when banner is None)."""

    def __init__(self, address: str, port: int, banner: bytes | None = None, hold: float = 0.05) -> None:
        self.banner = banner
        self.hold = hold
        super().__init__(self._greet, address, port)

    @property
    def accepted(self) -> int:
        return self.connections

    def _greet(self, conn: socket.socket, _n: int, _first: bytes) -> None:
        if self.banner is not None:
            conn.sendall(self.banner)
        time.sleep(self.hold)


@contextlib.contextmanager
def listening_hosts(count: int, services: tuple[tuple[int, bytes | None], ...]):
    """`count` loopback addresses of their own (in one random 127.x.y.0/24), each with a Listener per
    (port, banner) of `services`; the listeners are closed at the end."""
    base = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
    addresses = [f"{base}.{i}" for i in random.sample(range(2, 250), count)]
    listeners = [Listener(a, port, banner) for a in addresses for port, banner in services]
    try:
        yield addresses
    finally:
        for ln in listeners:
            ln.close()


class ScriptedServer(Scripted):
    """`Scripted` for scripts of the shape `behaviour(conn, stop)`; with `read_first` the client's opening
    bytes (its request) are read first, and every socket call then has 5 s."""

    def __init__(self, address: str, port: int, behaviour: Callable[[socket.socket, threading.Event], object],
                 read_first: bool = False) -> None:
        super().__init__(lambda conn, _n, _first: behaviour(conn, self.stop), address, port,
                         read_first=4096 if read_first else 0, timeout=5 if read_first else None, backlog=8)


def wait_port(address: str, port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{address}:{port} did not come up")


def self_signed(key: Path, cert: Path, cn: str) -> None:
    """A self-signed RSA certificate for `cn` (openssl req), unless `cert` is there already."""
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "30", "-subj", f"/CN={cn}"], check=True, capture_output=True)


def start_listening(argv: list[str], address: str, port: int) -> subprocess.Popen:
    """Start a server of ours (output discarded) and return once it accepts on address:port; stopped if it does not."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(address, port)
    except TimeoutError:
        stop_process(p)
        raise
    return p


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
    self_signed(key, cert, "loopback.test")
    p = subprocess.Popen(["openssl", "s_server", "-quiet", "-accept", f"{address}:{port}", "-cert", str(cert),
                          "-key", str(key), "-www"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(address, port)
    return p


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a server we started; kill it when it does not go within 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serving(servers: list[socketserver.BaseServer]) -> Iterator[None]:
    """Shut the (http.server / socketserver) servers down and close their sockets when the block ends."""
    try:
        yield
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()

@functools.cache
def lab_module(relative: str) -> types.ModuleType:
    """A module of the lab (lab/ is no package: its scripts run on the lab hosts), loaded from its path in the
    repository, e.g. lab_module("lab/hosts/_standins/data_api_standins.py"): the tests use the lab's own stand-ins."""
    path = Path(__file__).resolve().parent.parent / relative
    spec = importlib.util.spec_from_file_location(f"lab_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stop_processes_naming(mark: str) -> None:
    """Stop the processes one of whose command-line arguments contains `mark` (helpers a daemon of ours starts in
    sessions of their own, which outlive it): SIGTERM, then SIGKILL for those still there after 3 s."""
    needle = mark.encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if any(needle in arg for arg in cmdline.read_bytes().split(b"\0")):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 3
        while time.monotonic() < end and any(_alive(pid) for pid in pids):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"     # a zombie has ended; its parent reaps it


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


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def pick_port(addresses: list[str], preferred: int) -> int:
    """`preferred` (a service's default port) when it is free on every address, else a port free on all of them.
    A test never skips because a port is taken: a wildcard listener (*:22) of some other process, or the same
    test running elsewhere on the machine, moves it to another port, which it then passes to the scan."""
    if all(_bindable(a, preferred) for a in addresses):
        return preferred
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        if all(_bindable(a, port) for a in addresses):
            return port
    raise OSError(f"no TCP port free on all of {', '.join(addresses)}")
