"""Notifications against real receivers on 127.0.0.1: webhook (http.server), SMTP with STARTTLS (aiosmtpd),
syslog (UDP), and peers that refuse, fail, hang or trickle. Time is bounded; nothing raises."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from scanner.core.models import Finding
from scanner.core.output import FINDING_BRIEF_FIELDS
from scanner.schedule.jobs import Email, NotifyConfig, Syslog, Webhook
from scanner.schedule.notify import Change, deliver, redact_url, select_changes
from tests.schedule.servers import (
    LOOP,
    HangingServer,
    SmtpServer,
    SyslogReceiver,
    WebhookReceiver,
    wait_until,
)

SECRET = "S3cret-admin-pw"


def finding(rule: str, host: str, port: int | None, severity: str) -> Finding:
    return Finding(fingerprint=f"fp-{rule}-{host}-{port}", rule_id=rule, check_id="ports.open", address=host, port=port,
                   severity=severity, area=rule.split(".")[0], title_zh=f"中文标题 {rule}", title_en=f"Title {rule}",
                   clauses={}, evidence={"password": SECRET}, evidence_key="",
                   remediation={"zh": "修复", "en": "fix"})


NEW = [finding("crypto.cleartext.telnet", "10.77.0.40", 23, "high"),
       finding("medical.device.cleartext-service", "10.77.0.23", 514, "critical")]
FIXED = [finding("crypto.cleartext.ftp", "10.77.0.23", 21, "high")]


def change(**kw) -> Change:
    base = {"job": "nightly", "scan_id": "s20250101-020000-abcd", "previous_scan_id": "s20241231-020000-0123",
            "status": "done", "new": NEW, "fixed": FIXED, "open_counts": {"critical": 1, "high": 3, "medium": 0},
            "report_dirs": ["/var/lib/tcmscan/reports/nightly/s20250101-020000-abcd/zh"], "report_status": "ok",
            "signed": True}
    return Change(**{**base, **kw})


def test_select_changes_applies_threshold_and_on_fixed():
    low = finding("hardening.risky-port", "10.77.0.40", 23, "medium")
    diff = {"new": [*NEW, low], "fixed": [*FIXED, low]}
    new, fixed = select_changes(diff, NotifyConfig(min_severity="high", on_fixed=True))
    assert [f.rule_id for f in new] == ["crypto.cleartext.telnet", "medical.device.cleartext-service"]
    assert [f.rule_id for f in fixed] == ["crypto.cleartext.ftp"]
    new, fixed = select_changes(diff, NotifyConfig(min_severity="critical", on_fixed=False))
    assert ([f.rule_id for f in new], fixed) == (["medical.device.cleartext-service"], [])


def test_webhook_gets_json_with_changes_and_report_but_no_evidence():
    rx = WebhookReceiver()
    try:
        cfg = NotifyConfig(webhook=[Webhook(url=rx.url + "?token=hook-token", headers={"Authorization": "Bearer t0k"})])
        out = deliver(change(), cfg)
        assert [(d.channel, d.ok, d.attempts, d.target) for d in out] == \
            [("webhook", True, 1, f"http://{LOOP}:{rx.port}")]         # neither path nor query (tokens) is recorded
        (req,) = rx.requests
        assert req["path"] == "/hook?token=hook-token"
        assert req["headers"]["Authorization"] == "Bearer t0k"
        doc = req["json"]
        assert (doc["job"], doc["scan_id"], doc["previous_scan_id"], doc["status"]) == \
            ("nightly", "s20250101-020000-abcd", "s20241231-020000-0123", "done")
        assert [(f["rule_id"], f["address"], f["port"], f["severity"]) for f in doc["new"]] == \
            [("crypto.cleartext.telnet", "10.77.0.40", 23, "high"),
             ("medical.device.cleartext-service", "10.77.0.23", 514, "critical")]
        assert [(f["rule_id"], f["address"], f["port"]) for f in doc["fixed"]] == [("crypto.cleartext.ftp", "10.77.0.23", 21)]
        assert [list(f) for f in doc["new"] + doc["fixed"]] == [list(FINDING_BRIEF_FIELDS)] * 3   # the short form
        assert doc["report"] == {"dirs": ["/var/lib/tcmscan/reports/nightly/s20250101-020000-abcd/zh"],
                                 "signed": True, "status": "ok"}
        assert "新增问题（高危及以上）: 2" in doc["text_zh"] and "已修复问题（高危及以上）: 1" in doc["text_zh"]
        assert "New findings (at or above high): 2" in doc["text_en"]
        assert "已签名报告: /var/lib/tcmscan/reports/nightly/s20250101-020000-abcd/zh" in doc["text_zh"]
        assert "Signed report: /var/lib/tcmscan/reports/nightly/s20250101-020000-abcd/zh" in doc["text_en"]
        assert SECRET.encode() not in req["raw"] and b"evidence" not in req["raw"]
    finally:
        rx.close()


def test_nothing_to_say_sends_nothing():
    rx = WebhookReceiver()
    try:
        assert deliver(change(new=[], fixed=[]), NotifyConfig(webhook=[Webhook(url=rx.url)])) == []
        assert rx.requests == []
    finally:
        rx.close()


def test_email_over_starttls_with_login(tmp_path):
    srv = SmtpServer(tmp_path, login=("scanner", "smtp-pass-1"))
    pw = tmp_path / "smtp.pw"
    pw.write_text("smtp-pass-1\n")
    try:
        cfg = NotifyConfig(email=Email(host=LOOP, port=srv.port, from_addr="tcmscan@hospital.test",
                                       to=["sec@hospital.test", "it@hospital.test"], user="scanner",
                                       password_file=str(pw), ca_file=str(srv.ca)))
        (d,) = deliver(change(), cfg)
        assert (d.channel, d.ok, d.attempts) == ("email", True, 1), d.error
        assert wait_until(lambda: srv.messages)
        (m,) = srv.messages
        assert (m["from"], m["to"], m["tls"]) == ("tcmscan@hospital.test", ["sec@hospital.test", "it@hospital.test"],
                                                  True)
        assert srv.logins == [("scanner", "smtp-pass-1")]
        msg = m["msg"]
        assert msg["Subject"] == ("[tcmscan] 任务 nightly：新增 2 项、已修复 1 项 / job nightly: 2 new, 1 fixed "
                                  "(>= high)")
        text = SmtpServer.text(msg)
        assert "  [严重] 10.77.0.23:514 中文标题 medical.device.cleartext-service (medical.device.cleartext-service)" \
            in text
        assert "  [critical] 10.77.0.23:514 Title medical.device.cleartext-service " \
               "(medical.device.cleartext-service)" in text
        assert "  [high] 10.77.0.23:21 Title crypto.cleartext.ftp (crypto.cleartext.ftp)" in text
        assert "smtp-pass-1" not in msg.as_string() and SECRET not in msg.as_string()
    finally:
        srv.close()


def test_email_refused_when_server_lacks_starttls(tmp_path):
    srv = SmtpServer(tmp_path, starttls=False)
    try:
        cfg = NotifyConfig(retries=1, email=Email(host=LOOP, port=srv.port, from_addr="a@h.test", to=["b@h.test"]))
        (d,) = deliver(change(), cfg, sleep=lambda s: None)
        assert (d.ok, d.attempts) == (False, 2)
        assert "STARTTLS" in d.error
        assert srv.messages == []                  # nothing went out in clear
    finally:
        srv.close()


def test_syslog_udp_line():
    rx = SyslogReceiver()
    try:
        cfg = NotifyConfig(syslog=Syslog(address=f"udp://{LOOP}:{rx.port}", facility="local3"))
        (d,) = deliver(change(), cfg)
        assert d.ok, d.error
        assert wait_until(lambda: rx.messages)
        line = rx.messages[0].decode("utf-8")
        pri = (19 << 3) | 4                         # local3.warning
        assert line.startswith(f"<{pri}>tcmscan: tcmscan job=nightly scan=s20250101-020000-abcd status=done new=2 "
                               "fixed=1 min_severity=high "
                               "report=/var/lib/tcmscan/reports/nightly/s20250101-020000-abcd/zh signed=yes | "
                               "任务 nightly：新增 2 项，已修复 1 项")
    finally:
        rx.close()


def test_syslog_missing_socket_is_a_recorded_failure(tmp_path):
    cfg = NotifyConfig(retries=0, syslog=Syslog(address=str(tmp_path / "no-such-log-socket")))
    (d,) = deliver(change(), cfg)
    assert (d.channel, d.ok, d.attempts) == ("syslog", False, 1)
    assert d.error == f"FileNotFoundError: no syslog socket at {tmp_path / 'no-such-log-socket'} (is rsyslog or " \
                      "journald running?)"


def test_http_error_is_retried_then_recorded():
    rx = WebhookReceiver(status=500)
    slept: list[float] = []
    try:
        (d,) = deliver(change(), NotifyConfig(retries=2, webhook=[Webhook(url=rx.url)]), sleep=slept.append)
        assert (d.ok, d.attempts, d.error) == (False, 3, "HTTP 500 Internal Server Error")
        assert len(rx.requests) == 3
        assert slept == [1.0, 2.0]                  # exponential backoff between attempts
    finally:
        rx.close()


@pytest.mark.parametrize("channel", ["webhook", "email"])
def test_hanging_endpoint_is_bounded(channel):
    srv = HangingServer()
    try:
        cfg = NotifyConfig(timeout=0.5, retries=1)
        if channel == "webhook":
            cfg.webhook = [Webhook(url=f"http://{LOOP}:{srv.port}/hook")]
        else:
            cfg.email = Email(host=LOOP, port=srv.port, from_addr="a@h.test", to=["b@h.test"])
        t0 = time.monotonic()
        (d,) = deliver(change(), cfg)
        took = time.monotonic() - t0
        assert (d.ok, d.attempts) == (False, 2)
        assert "timed out" in d.error
        assert took < 0.5 * 2 + 1.0 + 1.5           # two attempts + one backoff + slack
    finally:
        srv.close()


def test_trickling_peer_hits_the_hard_deadline():
    """A peer sending one byte every 0.2 s never trips a socket timeout; the per-attempt deadline still ends it."""
    lsock = socket.socket()
    lsock.bind((LOOP, 0))
    lsock.listen(4)
    stop = threading.Event()

    def trickle() -> None:
        conns = []
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(lsock.accept()[0])
            except OSError:
                pass
            for c in conns:
                try:
                    c.send(b"H")
                except OSError:
                    pass
        for c in conns:
            c.close()

    threading.Thread(target=trickle, daemon=True).start()
    try:
        cfg = NotifyConfig(timeout=0.5, retries=0, webhook=[Webhook(url=f"http://{LOOP}:{lsock.getsockname()[1]}/")])
        t0 = time.monotonic()
        (d,) = deliver(change(), cfg)
        assert (d.ok, d.error) == (False, "timed out (no answer within 1.5 s)")
        assert time.monotonic() - t0 < 2.5
    finally:
        stop.set()
        lsock.close()


def test_redact_url():
    assert redact_url("https://user:pw@hooks.example.test:8443/a/b?token=x#f") == "https://hooks.example.test:8443"
    assert json.dumps(redact_url("http://[::1]:9/x?y")) == '"http://[::1]:9"'
