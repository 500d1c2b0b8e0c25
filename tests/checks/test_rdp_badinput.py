"""rdp.security against peers that lie, hang or flood (scripted servers on 127.16.2.x), a server shaped like Windows
with NLA required and a pre-negotiation (Windows XP) server; hypothesis over the X.224 Connection Confirm parser."""

from __future__ import annotations

import socket
import struct
import time

from hypothesis import given
from hypothesis import strategies as st

from checks.rdp._mcs import connect_initial, parse_connect_response
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from scanner.sdk.x224 import X224Error, connection_request, parse_connection_confirm, tpkt_length
from tests.fuzz import bounded, fuzz, mutated
from tests.loopback import Scripted


def confirm(neg: bytes = b"") -> bytes:
    x224 = struct.pack(">BBHHB", 6 + len(neg), 0xD0, 0, 0x1234, 0) + neg
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def rsp(selected: int) -> bytes:
    return confirm(struct.pack("<BBHI", 2, 0x1F, 8, selected))


def fail(code: int) -> bytes:
    return confirm(struct.pack("<BBHI", 3, 0, 8, code))


def _requested(first: bytes) -> int:
    return struct.unpack("<I", first[-4:])[0]


def windows_nla(conn: socket.socket, _n: int, first: bytes) -> None:
    """Windows with "require NLA": CredSSP requests get CredSSP, everything else HYBRID_REQUIRED_BY_SERVER."""
    conn.sendall(rsp(2) if _requested(first) & 2 else fail(5))


def xp(conn: socket.socket, _n: int, _first: bytes) -> None:
    conn.sendall(confirm())
    conn.recv(4096)          # whatever follows (our MCS Connect Initial) is read, then the peer hangs up: a FIN


def _attempt(address: str, port: int):
    asset = Asset(address, cls="server", services=[Service(port, name="ms-wbt-server")])
    start = time.monotonic()
    r = execute_attempt(AttemptSpec("t", "rdp.security", asset.to_dict(), port, timeout=40),
                        RunEnv(scope=[f"{address}/32"]))
    return r, time.monotonic() - start


def test_windows_nla_required_and_xp_shapes():
    with Scripted(windows_nla, "127.16.2.10", read_first=64, timeout=5) as srv:
        r, _ = _attempt("127.16.2.10", srv.port)
    d = r.observations[0].data
    assert (d["standard_rdp_security"], d["tls"], d["credssp"], d["nla_required"]) == (False, False, True, True)
    assert [o["failure"] or o["selected"] for o in d["offers"]] == [
        "HYBRID_REQUIRED_BY_SERVER", "HYBRID_REQUIRED_BY_SERVER", "CredSSP", "HYBRID_REQUIRED_BY_SERVER",
        "HYBRID_REQUIRED_BY_SERVER"]
    with Scripted(xp, "127.16.2.11", read_first=64, timeout=5) as srv:
        r, _ = _attempt("127.16.2.11", srv.port)
    d = r.observations[0].data
    assert (d["standard_rdp_security"], d["tls"], d["nla_required"], d["negotiation_supported"]) == \
        (True, False, False, False)
    assert {o["negotiation"] for o in d["offers"]} == {"none"}
    # RDP security accepted: the encryption is asked next; this peer hangs up instead of answering the MCS
    # Connect Initial, which is said, and the negotiation facts stand
    assert (d["encryption_methods"], d["encryption_error"]) == (
        [], "40-bit RC4: connection closed by the server after 0 of 4 bytes")


def _silent(conn, _n, _first):
    time.sleep(10)


def _flood(conn, _n, _first):
    end = time.monotonic() + 8
    while time.monotonic() < end:
        conn.sendall(b"\x03\x00\xff\xff" + b"A" * 65536)


CASES = {
    "http": (lambda c, _n, _f: c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "not_applicable", "",
             "not an RDP server: not a TPKT header (version byte 0x48): b'HTTP'"),
    "silent": (_silent, "error", "timeout", "RDP connection confirm: nothing received within 6 s"),
    "absurd length": (_flood, "not_applicable", "",
                      "not an RDP server: TPKT length 65535 is not a Connection Confirm's"),
    "closed after header": (lambda c, _n, _f: c.sendall(b"\x03\x00\x00\x13"), "not_applicable", "",
                            "not an RDP server: connection closed by the server after 0 of 15 bytes"),
    "bad second answer": (lambda c, n, f: c.sendall(rsp(0) if n == 1 else b"\x03\x00\x00\x0b\x06\xe0\x00\x00"
                                                    b"\x00\x00\x00"), "error", "protocol",
                          "request 0x1: X.224 code 0xe0 is not a Connection Confirm"),
}


def test_bad_peers_bounded():
    for i, (name, (script, status, reason, detail)) in enumerate(CASES.items()):
        address = f"127.16.2.{20 + i}"
        with Scripted(script, address, read_first=64, timeout=10) as srv:
            r, took = _attempt(address, srv.port)
        assert (r.status, r.reason, r.detail) == (status, reason, detail), name
        assert took < 8, (name, took)


# ---------------------------------------------------------------------------------------------- hypothesis

VALID = st.sampled_from((rsp(0), rsp(1), rsp(2), fail(1), fail(5), confirm()))


@fuzz
@given(st.one_of(st.binary(max_size=64), mutated(VALID)))
def test_connection_confirm_parser(data: bytes) -> None:
    c = bounded(parse_connection_confirm, data, allowed=(X224Error,))
    if c is not None:
        assert c.negotiation in ("response", "failure", "none")


@fuzz
@given(st.integers(0, 0xFFFFFFFF))
def test_connection_request_is_well_formed(protocols: int) -> None:
    req = connection_request(protocols)
    assert tpkt_length(req[:4]) == len(req) == req[4] + 5
    assert struct.unpack("<I", req[-4:])[0] == protocols


def _connect_response(method: int, level: int) -> bytes:
    """An MCS Connect Response as xrdp sends it, cut to what we read: result, id, domain parameters, GCC header,
    SC_CORE, SC_SECURITY (no server random or certificate), SC_NET."""
    blocks = (struct.pack("<HHI", 0x0C01, 8, 0x00080004) + struct.pack("<HHII", 0x0C02, 12, method, level)
              + struct.pack("<HHHH", 0x0C03, 8, 0x3EB, 0))
    gcc = bytes.fromhex("000500147c0001") + bytes([0x2A, 0x14, 0x76, 0x0A, 0x01, 0x01, 0x00, 0x01, 0xC0, 0x00,
                                                     0x4D, 0x63, 0x44, 0x6E]) + bytes([0x80 | 0, len(blocks)]) + blocks
    body = b"\x0a\x01\x00" + b"\x02\x01\x00" + b"\x30\x1c" + b"\x02\x01\x22" * 2 + b"\x02\x01\x00" * 6 + b"\x02\x02\xff\xf8" \
        + b"\x04\x82" + struct.pack(">H", len(gcc)) + gcc
    mcs = b"\x7f\x66\x82" + struct.pack(">H", len(body)) + body
    return struct.pack(">BBH", 3, 0, 7 + len(mcs)) + b"\x02\xf0\x80" + mcs


def test_connect_response_parser_reads_security_block():
    assert parse_connect_response(_connect_response(2, 3)) == (2, 3)
    req = connect_initial(0x10)
    assert struct.unpack(">H", req[2:4])[0] == len(req)
    assert struct.pack("<HHII", 0xC002, 12, 0x10, 0) in req


@fuzz
@given(st.one_of(st.binary(max_size=200), mutated(st.sampled_from((_connect_response(1, 1),
                                                                    _connect_response(2, 3))))))
def test_connect_response_parser(data: bytes) -> None:
    got = bounded(parse_connect_response, data, allowed=(X224Error,))
    assert got is None or len(got) == 2
