"""Webhook URLs carry their secret in the userinfo, the path (Slack, DingTalk, WeCom) or the query: a target is
logged, printed and stored as scheme://host:port only, and no error text — urllib's own, or a hostile peer's
reason phrase — brings any of it back. Real HTTP receivers on a random 127.x address: one answers 500 and
echoes the request line into its reason phrase and body, one port refuses."""

from __future__ import annotations

import base64
import json
import logging
import random
import socket
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scanner.schedule.jobs import NotifyConfig, Webhook
from scanner.schedule.notify import Change, deliver, redact_url, scrub, url_secrets
from tests.helpers import tcmscan
from tests.loopback import Listener
from tests.schedule.servers import stop_listener

HOST = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
PW, PATH, QUERY, HEADER = "PwZq41mark", "PathZq41mark", "QueryZq41mark", "HeaderZq41mark"
MARKERS = (PW, PATH, QUERY, HEADER)


class Echo500:
    """Answers every POST with 500, the request line in its reason phrase and its body (a peer that quotes)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append({"path": self.path, "headers": dict(self.headers)})
                body = f"no such hook {self.path}".encode()
                self.send_response(500, f"Internal Error at {self.path}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]       # closed again: nothing listens there


@pytest.fixture
def echo():
    srv = Echo500()
    yield srv
    srv.close()


def secret_url(port: int) -> str:
    return f"http://alice:{PW}@{HOST}:{port}/hooks/{PATH}?token={QUERY}&v=2"


def test_redact_url_keeps_scheme_host_port_only():
    assert redact_url("https://user:pw@hooks.example.test:8443/services/T0/B0/xyz?token=x#f") == \
        "https://hooks.example.test:8443"
    assert redact_url("http://[::1]:9/x?y") == "http://[::1]:9"
    assert redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc") == "https://oapi.dingtalk.com"
    assert redact_url("http://h:99999/x") == "(unparsable URL)"


def test_scrub_hides_parts_and_cuts_quoted_urls():
    url = secret_url(8080)
    hide = url_secrets(url, {"X-Token": HEADER})
    text = (f"nonnumeric port: '{PW}@{HOST}:8080' while opening {url} "
            f"(/hooks/{PATH}, token={QUERY}, {HEADER}) see https://u:p@other.test/a/b?c=d")
    out = scrub(text, hide)
    assert not any(m in out for m in MARKERS), out
    assert out.endswith("see https://other.test")
    assert HOST in out                                   # the host is what an operator needs, and is kept


def test_deliver_failures_keep_no_secret(echo, caplog):
    caplog.set_level(logging.INFO, logger="tcmscan.notify")
    refused = refused_port()
    cfg = NotifyConfig(webhook=[Webhook(url=secret_url(echo.port), headers={"X-Token": HEADER}),
                                Webhook(url=secret_url(refused))], timeout=2, retries=1)
    out = deliver(Change("nightly", "s20250101-020000-abcd", None, "failed", error="scan failed"), cfg,
                  sleep=lambda _s: None)
    assert [(d.channel, d.target, d.ok, d.attempts) for d in out] == [
        ("webhook", f"http://{HOST}:{echo.port}", False, 2), ("webhook", f"http://{HOST}:{refused}", False, 2)]
    assert out[0].error == "HTTP 500 Internal Error at …"
    assert out[1].error == "cannot connect: [Errno 111] Connection refused"
    # the userinfo became a Basic header (urllib would have read 'PASSWORD@host' as a port and quoted it)
    (first, _) = echo.requests
    assert first["path"] == f"/hooks/{PATH}?token={QUERY}&v=2"
    assert first["headers"]["Authorization"] == "Basic " + base64.b64encode(f"alice:{PW}".encode()).decode()
    assert first["headers"]["X-Token"] == HEADER
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("notification webhook to") == 4
    stored = json.dumps([d.to_dict() for d in out]) + logged
    assert [m for m in MARKERS if m in stored] == []


def test_job_run_log_row_and_output_keep_no_secret(echo, tmp_path):
    state = tmp_path / "state"
    refused = refused_port()
    cfg = tmp_path / "jobs.toml"
    cfg.write_text(f"""data_dir = "{state}"
[[job]]
name = "alerts"
targets = ["{HOST}"]
scope = ["{HOST}/32"]
checks = ["ports.open"]
[job.report]
formats = ["json"]
langs = ["en"]
[job.notify]
min_severity = "high"
timeout = 2
retries = 0
webhook = [{{url = "{secret_url(echo.port)}", headers = {{X-Token = "{HEADER}"}}}},
           {{url = "{secret_url(refused)}"}}]
""")
    telnet = Listener(HOST, 23, None)              # a high finding: something worth telling
    try:
        p = tcmscan("run", "alerts", "--config", str(cfg), "-v")
    finally:
        stop_listener(telnet)
    assert p.returncode == 4, p.stderr             # done, but the notifications failed
    assert len(echo.requests) == 1
    assert (f"tcmscan: notification webhook to http://{HOST}:{echo.port} failed after 1 attempt(s) in "
            in p.stderr)
    assert "s: HTTP 500 Internal Error at …\n" in p.stderr
    assert (f"tcmscan: notification webhook to http://{HOST}:{refused} failed after 1 attempt(s) in " in p.stderr)
    db = sqlite3.connect(state / "tcmscan.db")
    (row,) = db.execute("SELECT notifications FROM job_runs").fetchall()
    db.close()
    assert [(n["target"], n["ok"]) for n in json.loads(row[0])] == [(f"http://{HOST}:{echo.port}", False),
                                                                     (f"http://{HOST}:{refused}", False)]
    blobs = {"stdout": p.stdout.encode(), "stderr": p.stderr.encode()}
    blobs |= {str(f): f.read_bytes() for f in Path(state).rglob("*") if f.is_file()}
    assert any(k.endswith("tcmscan.db") for k in blobs)
    assert [(m, where) for m in MARKERS for where, blob in blobs.items() if m.encode() in blob] == []
