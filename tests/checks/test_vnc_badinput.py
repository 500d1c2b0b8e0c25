"""vnc.security against peers that lie, hang, drip or flood (scripted servers on 127.16.1.x): a fact or "not
assessed" with its reason, within the 8 s opening budget; and hypothesis over the RFB opening parser."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from scanner.sdk.rfb import RfbError, client_version, handshake, parse_version
from tests.fuzz import bounded, fuzz, mutated
from tests.loopback import Scripted

V38 = b"RFB 003.008\n"


def _attempt(address: str, port: int):
    asset = Asset(address, cls="server", services=[Service(port, name="vnc")])
    start = time.monotonic()
    r = execute_attempt(AttemptSpec("t", "vnc.security", asset.to_dict(), port, timeout=20),
                        RunEnv(scope=[f"{address}/32"]))
    return r, time.monotonic() - start


def _serve(script, address: str):
    return Scripted(lambda conn, _n, _first: script(conn), address, 0, timeout=15)


def _after_version(answer: bytes):
    def script(conn):
        conn.sendall(V38)
        conn.recv(12)
        conn.sendall(answer)
        time.sleep(1)
    return script


def _silent(conn):
    time.sleep(12)


def _drip(conn):
    for b in V38:
        conn.sendall(bytes([b]))
        time.sleep(1)


def _flood_reason(conn):
    conn.sendall(V38)
    conn.recv(12)
    conn.sendall(b"\x00" + struct.pack(">I", 0xFFFFFFFF))
    end = time.monotonic() + 10
    while time.monotonic() < end:
        conn.sendall(b"A" * 65536)


def _rfb33_none(conn):
    conn.sendall(b"RFB 003.003\n")
    conn.recv(12)
    conn.sendall(struct.pack(">I", 1))
    time.sleep(1)


def _apple(conn):
    conn.sendall(b"RFB 003.889\n")
    conn.recv(12)
    conn.sendall(b"\x02\x1e\x02")
    time.sleep(1)


CASES = {
    # name: (script, status, reason, detail or expected facts)
    "http": (lambda c: c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "not_applicable", "",
             "not an RFB ProtocolVersion: b'HTTP/1.1 400'"),
    "silent": (_silent, "error", "timeout", "VNC opening: nothing received within 8 s"),
    "drip": (_drip, "error", "timeout", "VNC opening: not done within 8 s (the peer is too slow)"),
    "closes after version": (_after_version(b""), "error", "protocol",
                             "connection closed by the server after 12 bytes"),
    "types cut short": (_after_version(b"\x05\x01\x02"), "error", "protocol",
                        "connection closed by the server after 15 bytes"),
    "absurd reason length": (_flood_reason, "error", "auth", "the server offered no security type: " + "A" * 200),
    "refused with reason": (_after_version(b"\x00" + struct.pack(">I", 26) + b"Too many security failures"),
                            "error", "auth", "the server offered no security type: Too many security failures"),
    "rfb 3.3 server picks None": (_rfb33_none, "completed", "",
                                  {"version": "3.3", "client_version": "3.3", "server_chose": True, "types": [1]}),
    "apple 3.889": (_apple, "completed", "", {"version": "3.889", "client_version": "3.8", "types": [30, 2],
                                             "type_names": ["Apple Remote Desktop", "VNC Authentication"]}),
    "vencrypt version 0.1": (_after_version(b"\x01\x13" + b"\x00\x01"), "completed", "",
                             {"types": [19], "vencrypt_subtypes": [],
                              "vencrypt_error": "VeNCrypt version 0.1 not read (0.2 only)"}),
}


def test_bad_peers_bounded():
    for i, (name, (script, status, reason, expect)) in enumerate(CASES.items()):
        address = f"127.16.1.{10 + i}"
        with _serve(script, address) as srv:
            r, took = _attempt(address, srv.port)
        assert (r.status, r.reason) == (status, reason), (name, r.detail)
        if isinstance(expect, str):
            assert r.detail == expect, name
        else:
            data = r.observations[0].data
            assert {k: data[k] for k in expect} == expect, name
        assert took < 10, (name, took)


# ---------------------------------------------------------------------------------------------- hypothesis

def _reader(data: bytes) -> Callable[[int], bytes]:
    """`read(n)` over `data`, as the socket reader: the next n bytes, RfbError past the end."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise RfbError("protocol", "closed")
        pos += n
        return data[pos - n:pos]

    return read


def _run(data: bytes):
    return handshake(_reader(data), lambda _b: None)


OPENINGS = st.sampled_from((
    V38 + b"\x01\x01", V38 + b"\x02\x13\x02" + b"\x00\x02\x00\x02" + struct.pack(">II", 258, 262),
    b"RFB 003.003\n" + struct.pack(">I", 2), V38 + b"\x00" + struct.pack(">I", 4) + b"nope",
))


@fuzz
@given(st.one_of(st.binary(max_size=600), mutated(OPENINGS)))
def test_opening_parser(data: bytes) -> None:
    hello = bounded(_run, data, allowed=(RfbError,))
    if hello is not None:
        assert all(0 <= t < 256 for t in hello.types) or hello.server_chose
        assert len(hello.refused) <= 200


@fuzz
@given(st.binary(min_size=12, max_size=12))
def test_version_line(line: bytes) -> None:
    v = bounded(parse_version, line, allowed=(RfbError,))
    if v is not None:
        assert bounded(client_version, *v, allowed=(RfbError,)) in (None, (3, 3), (3, 7), (3, 8))


@fuzz
@given(st.one_of(st.binary(max_size=64), mutated(st.just(b"\x11" * 16 + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x04fail"))),
       st.sampled_from(("3.3", "3.7", "3.8")))
def test_vnc_auth_parser(data: bytes, version: str) -> None:
    from scanner.sdk.rfb import Hello, vnc_auth
    read = _reader(data)
    hello = Hello("RFB 003.008", version, version, [2], version == "3.3")
    out = bounded(vnc_auth, read, lambda _b: None, hello, "password", allowed=(RfbError,))
    assert out is None or (isinstance(out[0], bool) and len(out[1]) <= 120)
