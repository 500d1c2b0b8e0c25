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
    """The newest installed PostgreSQL's program (Debian 12 ships 15; the postgresql package follows releases)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda f: [int(x) for x in f.parts[-3].split(".")])
    if not found:
        pytest.skip(f"PostgreSQL {name} not found (apt-get install postgresql)")
    return str(found[-1])


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


def db_cert(directory: Path, owner: str) -> tuple[Path, Path]:
    """A self-signed server.key/server.crt in `directory`, owned by the database's system user, key 0600."""
    key, cert = directory / "server.key", directory / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=db-twin.test"], check=True, capture_output=True)
    for f in (key, cert):
        shutil.chown(f, owner)
    key.chmod(0o600)
    return key, cert


def mariadb_datadir(root: Path, address: str) -> Path:
    """root/address, owned by mysql, with a fresh system database (mariadb-install-db, root without password)."""
    data = root / address
    data.mkdir(mode=0o700)
    shutil.chown(data, "mysql")
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True, timeout=180)
    return data


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
    from checks.snmp import _wire as wire
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
    """pyftpdlib server in a thread: optional anonymous login and local users (read-only).

    pyftpdlib's single-threaded server on an IOLoop of its own, not its ThreadedFTPServer: that one sends the
    banner from the accepting loop and then hands the connection to a new thread's loop, and now and then the
    client got the 220 greeting twice (seen as "unexpected reply to the login: 220 ..." in two suite runs)."""

    def __init__(self, tmp: Path, address: str, port: int, *, anonymous: bool,
                 users: dict[str, str] | None = None) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

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
        self.server = FTPServer((address, port), handler, ioloop=IOLoop())
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


FORM_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head><body>
<h1>{title}</h1>{message}
<form id="search" action="/search" method="get"><input type="text" name="q"></form>
<form method="post" action="/login" name="login">
  <input type="hidden" name="csrf_token" value="{token}">
  <label>User <input type="text" name="username" autocomplete="off"></label>
  <label>Password <input type="password" name="password"></label>
  <select name="lang"><option value="en">English</option><option value="zh" selected>中文</option></select>
  <input type="checkbox" name="remember" value="1">
  <input type="submit" name="do_login" value="Log in">
</form></body></html>"""


class FormConsole:
    """A device web console with an HTML login form (http.server on a loopback address of its own).

    GET / sets a session cookie and shows a form with a CSRF token; POST /login with an accepted pair answers
    302 to /dashboard with a new auth cookie, a wrong pair shows the form again with "Invalid ...".
    `csrf="required"`: each GET issues a new single-use token and a POST without it gets 403.
    `throttle`: every POST gets 429 (a console that locks out). Every POST is recorded in `posts`.
    `success="page"`: an accepted POST answers 200 with the console page and the auth cookie (no redirect);
    `"page-no-cookie"`: the same page but no cookie (we must not count that as a login).
    `tls_dir`: speak HTTPS with a self-signed certificate made there (openssl).
    """

    def __init__(self, address: str, port: int, *, accept: set[tuple[str, str]], title: str = "Device Console",
                 csrf: str = "static", throttle: bool = False, success: str = "redirect",
                 tls_dir: Path | None = None) -> None:
        import secrets
        from urllib.parse import parse_qsl

        self.posts: list[dict[str, str]] = []
        self.gets: list[str] = []
        self.logouts = 0
        self.tokens: dict[str, str] = {}        # session id -> current CSRF token
        self.issued: list[str] = []             # every CSRF token and auth cookie handed out (secrets)
        self.auth: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10      # a prober that connects and says nothing (or no TLS) does not hold a thread

            def _cookies(self) -> dict[str, str]:
                out = {}
                for part in (self.headers.get("Cookie") or "").split(";"):
                    k, _, v = part.strip().partition("=")
                    out[k] = v
                return out

            def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _form(self, message: str = "", status: int = 200) -> None:
                sid = self._cookies().get("sid") or secrets.token_hex(8)
                token = outer.tokens.get(sid)
                if token is None or csrf == "required":
                    token = outer.tokens[sid] = secrets.token_hex(16)
                    outer.issued.append(token)
                self._send(status, FORM_PAGE.format(title=title, token=token, message=message),
                           {"Set-Cookie": f"sid={sid}; Path=/; HttpOnly"})

            def do_GET(self) -> None:  # noqa: N802
                outer.gets.append(self.path)
                authed = self._cookies().get("auth") in outer.auth
                if self.path == "/dashboard" and authed:
                    self._send(200, f"<html><title>{title}</title><h1>Welcome, administrator</h1>"
                                    "<a href='/settings'>Settings</a> <a href='/logout'>Log out</a></html>")
                elif self.path == "/logout":
                    outer.auth.discard(self._cookies().get("auth", ""))
                    outer.logouts += 1
                    self._send(302, "", {"Location": "/"})
                elif self.path == "/":
                    self._form()
                else:
                    self._send(302, "", {"Location": "/"})

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                fields = dict(parse_qsl(self.rfile.read(min(n, 65536)).decode(), keep_blank_values=True))
                outer.posts.append(fields)
                if throttle:
                    self._send(429, "Too many login attempts", {"Retry-After": "300"})
                    return
                sid = self._cookies().get("sid", "")
                if csrf == "required" and (not fields.get("csrf_token")
                                           or outer.tokens.pop(sid, None) != fields.get("csrf_token")):
                    self._send(403, "<html>CSRF check failed</html>")
                    return
                if self.path == "/login" and (fields.get("username"), fields.get("password")) in accept:
                    cookie = secrets.token_hex(16)
                    outer.auth.add(cookie)
                    outer.issued.append(cookie)
                    if success == "redirect":
                        self._send(302, "", {"Location": "/dashboard", "Set-Cookie": f"auth={cookie}; Path=/"})
                    else:
                        self._send(200, f"<html><title>{title}</title><h1>Status</h1>all channels idle</html>",
                                   {"Set-Cookie": f"auth={cookie}; Path=/"} if success == "page" else {})
                else:
                    self._form('<p class="error">Invalid user name or password</p>')

            def log_message(self, *_a) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *_a) -> None:   # nmap's probes reset connections: not our business
                pass

        self.server = Server((address, port), Handler)
        if tls_dir is not None:
            import ssl

            key, cert = tls_dir / "console.key", tls_dir / "console.crt"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                            "-out", str(cert), "-days", "30", "-subj", "/CN=console.test"], check=True,
                           capture_output=True)
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            c.load_cert_chain(cert, key)
            # handshake in the handler thread (first read), not in accept(): a silent prober must not block
            self.server.socket = c.wrap_socket(self.server.socket, server_side=True,
                                               do_handshake_on_connect=False)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        wait_port(address, port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
