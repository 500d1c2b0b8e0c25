"""Misbehaving servers on loopback: garbage, truncated, oversized, silent, one byte a second, hang-ups.
Each attempt ends within its time budget with a recorded reason; nothing crashes (no reason "bug")."""

from __future__ import annotations

import socket
import struct
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.tls import _probe as P
from checks.tls._suites import tables
from tests.checks.tls_support import LOOP, Misbehaving, attempt

FAST = {"tls_probe_timeout": 1.0}


def _offered_suite(first: bytes) -> int:
    """The first suite of the ClientHello in `first` (so a fake can 'accept' something offered)."""
    try:
        body = first[9:]
        pos = 2 + 32
        pos += 1 + body[pos]
        return struct.unpack_from("!H", body, pos + 2)[0]
    except (IndexError, struct.error):     # an SSLv2 hello from the SSLv2 chain
        return 0x002F


def _server_hello_record(version: int, suite: int) -> bytes:
    body = struct.pack("!H", version) + b"\x22" * 32 + b"\x00" + struct.pack("!HB", suite, 0)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0x0303, len(hs)) + hs


def _run(behave, **kw):
    with Misbehaving(behave) as srv:
        res = attempt(srv.port, **kw)
        return res, res.duration, srv.connections      # the runner's own measure of the attempt


def test_http_server_is_not_tls():
    res, took, conns = _run(lambda c, _f: c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                            options=FAST)
    assert (res.status, res.reason) == ("not_applicable", "")
    assert "does not speak TLS" in res.detail
    assert conns == 1          # one ClientHello decided it: no eight-connection fan-out on a non-TLS port
    assert took < 3


def test_silent_server_times_out_within_budget():
    res, took, conns = _run(lambda c, _f: time.sleep(3), options=FAST)
    assert (res.status, res.reason) == ("error", "timeout")
    assert took < 2.5 and conns == 1


def test_one_byte_per_second_server_times_out():
    def slow(conn, first):
        for b in _server_hello_record(0x0303, _offered_suite(first)):
            conn.sendall(bytes([b]))
            time.sleep(1)
    res, took, _ = _run(slow, options=FAST)
    assert (res.status, res.reason) == ("error", "timeout")
    assert "after" in res.detail and took < 3


def test_truncated_handshake_is_a_protocol_error():
    def truncated(conn, first):
        conn.sendall(_server_hello_record(0x0303, _offered_suite(first))[:20])
    res, took, _ = _run(truncated, options=FAST)
    assert (res.status, res.reason) == ("error", "protocol")
    assert "truncated" in res.detail and took < 3


def test_oversized_record_header_is_a_protocol_error():
    res, _took, _ = _run(lambda c, _f: c.sendall(struct.pack("!BHH", 22, 0x0303, 0xFFFF) + b"\0" * 100),
                         options=FAST)
    assert (res.status, res.reason) == ("error", "protocol")
    assert "oversized record" in res.detail


def test_endless_certificate_is_cut_at_the_byte_budget():
    """ServerHello, then a Certificate message claiming 16 MB streamed in valid records: we stop at 256 KiB."""
    def endless(conn, first):
        conn.sendall(_server_hello_record(0x0303, _offered_suite(first)))
        cert_hdr = b"\x0b" + (0xFFFFFF).to_bytes(3, "big")
        chunk = cert_hdr + b"\0" * (16000 - len(cert_hdr))
        conn.sendall(struct.pack("!BHH", 22, 0x0303, len(chunk)) + chunk)
        for _ in range(40):      # 640 KB at most, then give up
            conn.sendall(struct.pack("!BHH", 22, 0x0303, 16000) + b"\0" * 16000)
    res, took, _ = _run(endless, options=FAST)
    assert (res.status, res.reason) == ("error", "protocol")
    assert "oversized" in res.detail and took < 5


def test_server_that_hangs_up_on_everything_is_not_tls():
    res, _took, conns = _run(lambda c, _f: None, options=FAST)
    assert res.status == "not_applicable"
    assert "closed the connection on every ClientHello" in res.detail
    assert conns == 8          # one per chain: SSLv2 .. TLS 1.3, RFC 8998, TLCP


def test_reset_port_is_a_connectivity_error():
    s = socket.socket()
    s.bind((LOOP, 0))
    port = s.getsockname()[1]
    s.close()                 # nothing listens: connection refused
    res = attempt(port, options=FAST)
    assert (res.status, res.reason) == ("error", "connectivity")


def test_suite_not_offered_is_a_protocol_error():
    res, _took, _ = _run(lambda c, _f: c.sendall(_server_hello_record(0x0303, 0xFEFE)), options=FAST)
    assert (res.status, res.reason) == ("error", "protocol")
    assert "not offered" in res.detail


class _Replay:
    """One loopback server whose reply is swapped per hypothesis example."""

    def __init__(self) -> None:
        self.reply = b""
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOP, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(1)
                conn.recv(65536)
                conn.sendall(self.reply)
            except OSError:
                pass
            finally:
                conn.close()


_REPLAY: _Replay | None = None


@settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400),
                 st.builds(lambda t, v, body: struct.pack("!BHH", t, v, len(body)) + body,
                           st.sampled_from([21, 22, 23]), st.sampled_from([0x0301, 0x0303, 0x0101]),
                           st.binary(max_size=300))))
def test_probe_on_arbitrary_replies_returns_an_outcome(reply: bytes) -> None:
    global _REPLAY
    if _REPLAY is None:
        _REPLAY = _Replay()
    _REPLAY.reply = reply
    t = time.monotonic()
    out = P.probe_tls(lambda: socket.create_connection((LOOP, _REPLAY.port), timeout=1), 0x0303, tables().tls12,
                      timeout=1.0, want_certificate=True)
    assert out.kind in (P.ACCEPTED, P.REFUSED, P.NOT_TLS, P.TIMEOUT, P.PROTOCOL)
    assert time.monotonic() - t < 1.5
