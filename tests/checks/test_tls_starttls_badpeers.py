"""STARTTLS peers that misbehave, as scripted servers on 127.55.1.x (real sockets, each conversation written
out below): STARTTLS refused, silent, endless or one-byte-a-second banners, garbage, a go-ahead followed by
no TLS, bytes pushed ahead of our ClientHello, a server that offers once and refuses later. Every attempt
ends within its budget with a fact (offered: false) or a recorded reason; hypothesis feeds the dialogue
parser arbitrary bytes."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checks.tls import _starttls as starttls
from scanner.core.models import Asset, AttemptResult, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from scanner.sdk.errors import CheckError
from tests.loopback import Scripted

ADDRESS = "127.55.1.1"
FAST = {"tls_probe_timeout": 1.0}


def line(conn: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        buf += b
    return buf


def run(talk: Callable[[socket.socket, int], None], name: str = "smtp", port_name: int | None = None,
        **options: float) -> tuple[AttemptResult, int]:
    # `talk(conn, n)` for the n-th connection (from 1); every socket call of the conversation has 3 s
    srv = Scripted(lambda conn, n, _first: talk(conn, n), ADDRESS, timeout=3, backlog=32)
    try:
        asset = Asset(address=ADDRESS, name="bad", cls="server", zone="server",
                      services=[Service(port=srv.port, name=name)])
        spec = AttemptSpec(scan_id="t", check_id="tls.scan", asset=asset.to_dict(), port=srv.port, timeout=10.0,
                           safe_mode=False, options={**FAST, **options})
        res = execute_attempt(spec, RunEnv(scope=[f"{ADDRESS}/32"]))
        return res, srv.connections
    finally:
        srv.close()


def smtp_until_starttls(conn: socket.socket, answer: bytes) -> None:
    conn.sendall(b"220 bad.test ESMTP\r\n")
    line(conn)                                             # EHLO
    conn.sendall(b"250-bad.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
    line(conn)                                             # STARTTLS
    conn.sendall(answer)


def test_starttls_advertised_but_refused_is_a_fact() -> None:
    res, conns = run(lambda c, _n: (smtp_until_starttls(c, b"454 4.7.0 TLS not available due to local problem\r\n"),
                                    line(c)))
    assert (res.status, res.reason, conns) == ("completed", "", 1)
    assert [(o.key, o.data) for o in res.observations] == [("starttls", {"starttls": {
        "protocol": "smtp", "offered": False,
        "reply": "STARTTLS refused: 454 4.7.0 TLS not available due to local problem"}})]


def test_silent_server_times_out_within_budget() -> None:
    res, conns = run(lambda c, _n: time.sleep(3))
    assert (res.status, res.reason, conns) == ("error", "timeout", 1)
    assert "smtp STARTTLS: no complete reply in time" in res.detail
    assert res.duration < 2.5


def test_one_byte_a_second_banner_times_out() -> None:
    def slow(conn, _n):
        for b in b"220 slow.test ESMTP\r\n":
            conn.sendall(bytes([b]))
            time.sleep(1)
    res, _ = run(slow)
    assert (res.status, res.reason) == ("error", "timeout")
    assert re.search(r"no complete reply in time after [12] bytes", res.detail) and res.duration < 2.5


def test_endless_banner_is_cut_at_the_byte_budget() -> None:
    def endless(conn, _n):
        for _ in range(2000):                               # 150 KB at most, then give up
            conn.sendall(b"220-" + b"x" * 70 + b"\r\n")
    res, _ = run(endless)
    assert (res.status, res.reason) == ("error", "protocol")
    assert f"cleartext exchange longer than {starttls.MAX_EXCHANGE_BYTES} bytes" in res.detail
    assert res.duration < 2


def test_garbage_greeting_is_a_protocol_error() -> None:
    res, _ = run(lambda c, _n: (c.sendall(b"\x16\x03\x01\x00\x05hello\xff\xfe\r\n"), time.sleep(0.5)), name="ftp")
    assert (res.status, res.reason) == ("error", "protocol")
    assert "ftp STARTTLS: not a reply line" in res.detail


def test_go_ahead_then_no_tls_is_a_protocol_error() -> None:
    def liar(conn, _n):
        smtp_until_starttls(conn, b"220 2.0.0 Ready to start TLS\r\n")
        conn.recv(65536)                                   # our ClientHello
        conn.sendall(b"500 5.5.2 Error: bad syntax\r\n")
    res, conns = run(liar)
    assert (res.status, res.reason, conns) == ("error", "protocol", 1)
    assert "smtp STARTTLS accepted, then no TLS answer" in res.detail


def test_bytes_pushed_ahead_of_our_client_hello_are_refused() -> None:
    res, _ = run(lambda c, _n: (smtp_until_starttls(c, b"220 go ahead\r\n\x16\x03\x03\x00\x02\x02\x28"),
                                time.sleep(0.5)))
    assert (res.status, res.reason) == ("error", "protocol")
    assert "7 unexpected bytes after the STARTTLS go-ahead" in res.detail


def test_offered_once_then_refused_is_a_protocol_error_not_a_fact() -> None:
    def flaky(conn, n):
        if n == 1:
            smtp_until_starttls(conn, b"220 go ahead\r\n")
            conn.recv(65536)                               # our ClientHello: hang up (TLS 1.2 "closed")
        else:
            smtp_until_starttls(conn, b"454 4.3.0 try again later\r\n")
            line(conn)
    res, _ = run(flaky)
    assert (res.status, res.reason) == ("error", "protocol")
    assert "STARTTLS offered on an earlier connection, then refused: STARTTLS refused: 454 4.3.0" in res.detail


def test_smtp_without_ehlo_has_no_starttls() -> None:
    def helo_only(conn, _n):
        conn.sendall(b"220 old.test SMTP\r\n")
        line(conn)
        conn.sendall(b"502 5.5.1 EHLO not implemented\r\n")
        line(conn)
    res, _ = run(helo_only)
    assert [o.data for o in res.observations] == [{"starttls": {
        "protocol": "smtp", "offered": False, "reply": "EHLO refused: 502 5.5.1 EHLO not implemented"}}]


@pytest.mark.parametrize(("greeting", "answers", "status", "want"), [
    # no capabilities in the greeting: CAPABILITY first, then STARTTLS refused with NO
    (b"* OK IMAP ready\r\n", [b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n", b"a2 NO not now\r\n"],
     "completed", {"starttls": {"protocol": "imap", "offered": False, "reply": "STARTTLS refused: NO not now"}}),
    (b"* PREAUTH [CAPABILITY IMAP4rev1] logged in as nobody\r\n", [], "completed",
     {"starttls": {"protocol": "imap", "offered": False, "reply": "pre-authenticated session, STARTTLS not allowed: "
                   "* PREAUTH [CAPABILITY IMAP4rev1] logged in as nobody"}}),
    (b"* BYE too many connections\r\n", [], "error", "imap STARTTLS: greeting is not '* OK' / '* PREAUTH' after 28 "
                                                   "bytes; last line b'* BYE too many connections'"),
    (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", [b"* BYE shutting down\r\n"], "error",
     "imap STARTTLS: server said BYE after 62 bytes; last line b'* BYE shutting down'"),
])
def test_imap_dialogues(greeting, answers, status, want) -> None:
    def imap(conn, _n):
        conn.sendall(greeting)
        for a in answers:
            line(conn)
            conn.sendall(a)
        line(conn)
    res, _ = run(imap, name="imap")
    # completed: one observation `want`; error: a protocol error whose detail is `want`
    assert (res.status, res.reason, res.detail, [o.data for o in res.observations]) == (
        (status, "", "", [want]) if status == "completed" else (status, "protocol", want, []))


def test_ftp_unexpected_positive_answer_is_a_protocol_error() -> None:
    def ftp(conn, _n):
        conn.sendall(b"220-welcome\r\n  to the\r\n220 ftp\r\n")
        line(conn)
        conn.sendall(b"334 ADAT needed\r\n")
        line(conn)
    res, _ = run(ftp, name="ftp")
    assert (res.status, res.reason) == ("error", "protocol")
    assert "unexpected answer to AUTH TLS: 334 ADAT needed" in res.detail


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(protocol=st.sampled_from(starttls.PROTOCOLS),
       reply=st.one_of(
           st.binary(max_size=600),
           st.lists(st.sampled_from([b"220 ok", b"220-x", b"250-STARTTLS", b"250 STARTTLS", b"234 go", b"+OK",
                                     b"-ERR no", b"* OK [CAPABILITY STARTTLS]", b"* CAPABILITY STARTTLS",
                                     b"a1 OK", b"a2 OK", b"a2 NO", b"* BYE", b"* PREAUTH", b"530 no", b"\xff",
                                     b""]), max_size=8).map(lambda ls: b"\r\n".join(ls) + b"\r\n")),
       hang_up=st.booleans())
@example(protocol="smtp", reply=b"220 ok\r\n", hang_up=False)    # EHLO from a socket without an IP address
@example(protocol="smtp", reply=b"220 ok\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n", hang_up=True)   # upgraded
def test_dialogue_on_arbitrary_bytes_ends_in_time(protocol: str, reply: bytes, hang_up: bool) -> None:
    """Whatever the server says: success, NotOffered or CheckError(protocol|timeout), within the deadline."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(reply)
        if hang_up:
            theirs.shutdown(socket.SHUT_WR)
        t = time.monotonic()
        try:
            starttls.negotiate(ours, protocol, time.monotonic() + 0.2)
        except starttls.NotOffered as e:
            assert e.protocol == protocol
        except CheckError as e:
            assert e.reason in ("protocol", "timeout")
        assert time.monotonic() - t < 0.5
    finally:
        ours.close()
        theirs.close()
