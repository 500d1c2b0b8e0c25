"""Real daemons for the services/creds/snmp tests, on loopback addresses of their own, started and stopped
by the tests (never the system services): redis-server, memcached, PostgreSQL, snmpd, an FTP server
(pyftpdlib) and an HTTP Basic server (http.server)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.loopback import wait_port


def need(*binaries: str) -> None:
    missing = [b for b in binaries if not shutil.which(b)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install redis-server memcached postgresql snmpd)")


class Procs:
    """Processes we started, stopped by PID (terminate, then kill)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def redis(procs: Procs, address: str, port: int, password: str = "") -> None:
    need("redis-server")
    args = ["redis-server", "--port", str(port), "--bind", address, "--save", "", "--appendonly", "no",
            "--protected-mode", "no", "--daemonize", "no", "--dir", "/tmp"]
    if password:
        args += ["--requirepass", password]
    procs.start(args)
    wait_port(address, port)


def memcached(procs: Procs, address: str, port: int) -> None:
    need("memcached")
    procs.start(["memcached", "-l", address, "-p", str(port), "-U", "0", "-u", "nobody", "-m", "8"])
    wait_port(address, port)


def _pg_bin(name: str) -> str:
    for d in ("/usr/lib/postgresql/15/bin", "/usr/local/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    pytest.skip(f"PostgreSQL {name} not found")
    return ""


def postgres(procs: Procs, address: str, port: int, *, method: str, password: str = "") -> Path:
    """A throw-away cluster owned by the 'postgres' system user; `method` trust or scram-sha-256.
    Lives under /tmp (pytest's tmp is root-only); the caller removes the returned directory."""
    tmp = Path(tempfile.mkdtemp(prefix=f"tcmscan-pg{port}-"))
    os.chmod(tmp, 0o755)
    shutil.chown(tmp, "postgres")
    data = tmp / "data"
    pwfile = tmp / "pw"
    pwfile.write_text(password or "x")
    shutil.chown(pwfile, "postgres")
    p = subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                        "--pwfile", str(pwfile), "-A", method, "--no-sync", "-E", "UTF8"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise RuntimeError(f"initdb failed: {p.stderr[-500:]}")
    procs.start(["runuser", "-u", "postgres", "--", _pg_bin("postgres"), "-D", str(data), "-h", address,
                 "-p", str(port), "-k", str(tmp), "-c", "fsync=off"])
    wait_port(address, port, timeout=30)
    return tmp


def snmpd(procs: Procs, tmp: Path, address: str, port: int) -> None:
    """net-snmp agent: v1/v2c, community public read-only and private read-write (as the lab switch)."""
    need("snmpd")
    conf = tmp / "snmpd.conf"
    conf.write_text(f"agentaddress udp:{address}:{port}\nrocommunity public default\nrwcommunity private default\n"
                    "sysName test-switch\nsysLocation rack-A1\nsysContact noc@test\n"
                    "sysDescr Test switch fw V1.2.3\n")
    procs.start(["snmpd", "-f", "-Lf", str(tmp / "snmpd.log"), "-C", "-c", str(conf), "-p", str(tmp / "snmpd.pid")],
                env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "snmp-persist"), "MIBS": ""})
    # UDP has no connect: wait until the agent answers GETs promptly 10 times in a row (net-snmp stalls for
    # seconds after its first answers while it loads its caches)
    from checks.snmp import wire
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    quick = 0
    try:
        for i in range(200):
            s.sendto(wire.encode_get("v2c", "public", i + 1, [wire.SYS_NAME]), (address, port))
            try:
                while wire.decode(s.recvfrom(4096)[0]).request_id != i + 1:
                    pass
                quick += 1
                if quick >= 10:
                    return
                time.sleep(0.1)
            except OSError:
                quick = 0
    finally:
        s.close()
    raise TimeoutError("snmpd did not answer")


class FTP:
    """pyftpdlib server in a thread: optional anonymous login and local users (read-only)."""

    def __init__(self, tmp: Path, address: str, port: int, *, anonymous: bool,
                 users: dict[str, str] | None = None) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

        root = tmp / f"ftp{port}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "readme.txt").write_text("test\n")
        auth = DummyAuthorizer()
        if anonymous:
            auth.add_anonymous(str(root))
        for u, p in (users or {}).items():
            auth.add_user(u, p, str(root), perm="elr")
        handler = type("Handler", (FTPHandler,), {"authorizer": auth, "banner": "test ftpd ready",
                                                  "auth_failed_timeout": 0})
        self.server = ThreadedFTPServer((address, port), handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.2}, daemon=True).start()
        wait_port(address, port)

    def close(self) -> None:
        self.server.close_all()


class BasicHTTP:
    """HTTP server whose / asks for HTTP Basic and accepts exactly one user:password."""

    def __init__(self, address: str, port: int, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.logins: list[str] = []

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                got = self.headers.get("Authorization", "")
                outer.logins.append(got)
                if got == f"Basic {token}":
                    body = b"<html><title>Device console</title>ok</html>"
                    self.send_response(200)
                else:
                    body = b"login required"
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="Device Console"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, *_a) -> None:   # nmap's probes reset connections: not our business
                pass

        self.server = Server((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        wait_port(address, port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
