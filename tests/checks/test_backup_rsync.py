"""backup.rsync and backup.http-files end to end: real rsync daemon / HTTP server on 127.0.0.1, the real
`tcmscan scan` CLI, a real SQLite file, exact findings."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.checks.backup_helpers import backup_profile
from tests.helpers import scan


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def rsyncd(tmp_path):
    if not shutil.which("rsync"):
        pytest.skip("needs rsync")
    procs = []

    def start(listable: bool) -> int:
        port = _free_port()
        (tmp_path / "data").mkdir(exist_ok=True)
        conf = tmp_path / f"rsyncd-{port}.conf"
        conf.write_text(f"address = 127.0.0.1\nport = {port}\nuse chroot = no\nreverse lookup = no\n"
                        f"pid file = {tmp_path}/rsyncd-{port}.pid\n[backups]\n  comment = nightly HIS dumps\n"
                        f"  path = {tmp_path}/data\n  list = {'yes' if listable else 'no'}\n")
        p = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}"])
        procs.append(p)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rsync daemon did not start")

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _scan(tmp_path: Path, port: int, check: str) -> set[tuple[str, str, int | None]]:
    _, found = scan(["127.0.0.1"], scope=["127.0.0.1"], db=tmp_path / "scan.db", checks=[check],
                    extra=["--ports", str(port), "--no-ping", "--profile", str(backup_profile(tmp_path))])
    return {(f["address"], f["rule_id"], f["port"]) for f in found}


def test_anonymous_listing_is_critical(rsyncd, tmp_path):
    port = rsyncd(True)
    assert _scan(tmp_path, port, "backup.rsync") == {("127.0.0.1", "backup.exposed-rsync", port)}


def test_unlisted_module_passes(rsyncd, tmp_path):
    port = rsyncd(False)
    assert _scan(tmp_path, port, "backup.rsync") == set()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        if self.path == "/db.sql":
            self.send_response(200)
            self.send_header("Content-Type", "application/sql")
            self.send_header("Content-Length", "1234")
        else:
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_http_backup_file(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        assert _scan(tmp_path, port, "backup.http-files") == {("127.0.0.1", "backup.http-exposed", port)}
    finally:
        srv.shutdown()
