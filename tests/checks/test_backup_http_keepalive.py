"""backup.http-files asks every path of a port over one kept-alive connection (one TLS handshake per port, not
per path) against a real nginx on loopback, plain and TLS; nginx's own access log counts the connections. The
reconnecting path (an HTTP/1.0 server that closes after each answer) is tests/checks/test_backup_rsync.py's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from checks.backup import http_files
from scanner.core.knowledge import knowledge
from tests.checks.hostile_loopback import context
from tests.loopback import pick_port, wait_port

NGINX = "/usr/sbin/nginx"
ADDRESS = "127.45.5.1"


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx-keepalive")
    ports = {"http": pick_port([ADDRESS], 80), "https": pick_port([ADDRESS], 443)}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=keepalive", "-days",
                    "2", "-keyout", str(tmp / "k.pem"), "-out", str(tmp / "c.pem")], check=True, capture_output=True)
    (tmp / "t").mkdir()
    site = ('location = /db.sql { default_type application/sql; return 200 "-- dump\\n"; } '
            'location / { return 404; }')
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"worker_processes 1; master_process off; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
        f"events {{ worker_connections 64; }}\nhttp {{ log_format c '$server_port $connection $request';\n"
        f"access_log {tmp}/access.log c; client_body_temp_path {tmp}/t; proxy_temp_path {tmp}/t;\n"
        f"fastcgi_temp_path {tmp}/t; uwsgi_temp_path {tmp}/t; scgi_temp_path {tmp}/t;\n"
        f"server {{ listen {ADDRESS}:{ports['http']}; {site} }}\n"
        f"server {{ listen {ADDRESS}:{ports['https']} ssl; ssl_certificate {tmp}/c.pem; "
        f"ssl_certificate_key {tmp}/k.pem; {site} }}\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for p in ports.values():
            wait_port(ADDRESS, p)
        yield ports, tmp / "access.log"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("kind", ["http", "https"])
def test_every_path_of_a_port_over_one_connection(nginx, kind: str) -> None:
    ports, log = nginx
    port = ports[kind]
    ctx = context(ADDRESS, port, kind, "backup.http-files", timeout=60)
    (obs,) = http_files.run(ctx)
    table = knowledge()["backup_http_paths"]
    tried = min(len(table["paths"]), int(table["max_requests"]) - 1) + 1
    assert obs.data == {"tried": tried, "exposed": [{"path": "/db.sql", "status": 200, "type": "application/sql",
                                                     "length": 8}], "catch_all": False}
    lines = [ln.split(" ", 2) for ln in Path(log).read_text().splitlines() if ln.startswith(f"{port} ")]
    assert len(lines) == tried and all(req.startswith("HEAD /") for _, _, req in lines)
    assert len({conn for _, conn, _ in lines}) == 1, "one connection for every HEAD of the port"


def test_a_head_answer_followed_by_a_body_is_not_reused() -> None:
    """The lab's hostile `http-endless-chunked` (absurd:8080): the head, then, in a later write, a chunked body
    that never ends, on every connection. A kept connection would read that body as the next answer; it is
    dropped and each path asked on a new connection, so the check completes (a catch-all page, nothing exposed)."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind((ADDRESS, 0))
    server.listen(16)
    stop = threading.Event()

    def talk(conn: socket.socket) -> None:
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
                time.sleep(0.05)
                chunk = b"<p>" + b"endless " * 510 + b"</p>\n"
                while not stop.is_set():
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=talk, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        port = server.getsockname()[1]
        (obs,) = http_files.run(context(ADDRESS, port, "http-alt", "backup.http-files", timeout=60))
        assert obs.data["exposed"] == [] and obs.data["catch_all"] is True
    finally:
        stop.set()
        server.close()
