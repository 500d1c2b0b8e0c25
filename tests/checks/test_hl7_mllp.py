"""hl7.mllp against real MLLP listeners on loopback (well-behaved and misbehaving), the CLI end to end,
and hypothesis tests of the MLLP/HL7/DICOM parsers in scanner/sdk/probes.py."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from scanner.sdk.probes import (
    ProbeError,
    harmless_message,
    mllp_frame,
    parse_hl7,
    parse_pdu,
    read_mllp_frame,
    read_pdu,
)
from tests.helpers import scan
from tests.loopback import Scripted


class MllpPeer(Scripted):
    """An MLLP listener on loopback. mode: ack | nak | silent | no-end | flood | slow | tls-alert."""

    def __init__(self, address: str, port: int, mode: str = "ack", delays: list[float] | None = None) -> None:
        self.mode = mode
        self.delays = list(delays or [])
        self.received: list[bytes] = []
        super().__init__(self._one, address, port, timeout=5)

    def _one(self, conn: socket.socket, _n: int, _first: bytes) -> None:
        # a client that hangs up or times out ends the talk (OSError, swallowed by Scripted)
        buf = b""
        while b"\x1c\x0d" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        self.received.append(buf)
        msg = buf[1:buf.index(b"\x1c\x0d")]
        ctl = msg.split(b"\r")[0].split(b"|")[9]
        ack = b"MSH|^~\\&|LABENGINE|HOSP|TCMSCAN|SECURITY-ASSESSMENT|20240101000000||ACK|A1|T|2.5\r"
        if self.mode == "ack":
            conn.sendall(mllp_frame(ack + b"MSA|AA|" + ctl + b"\r"))
        elif self.mode == "nak":
            conn.sendall(mllp_frame(ack + b"MSA|AR|" + ctl + b"|training messages not accepted\r"))
        elif self.mode == "slow":
            time.sleep(self.delays.pop(0) if self.delays else 10)
            conn.sendall(mllp_frame(ack + b"MSA|AA|" + ctl + b"\r"))
        elif self.mode == "no-end":
            conn.sendall(b"\x0b" + ack)
            time.sleep(12)
        elif self.mode == "flood":
            end = time.monotonic() + 5
            while time.monotonic() < end:
                conn.sendall(b"A" * 65536)
        elif self.mode == "tls-alert":
            conn.sendall(b"\x15\x03\x01\x00\x02\x02\x46")
        elif self.mode == "silent":
            time.sleep(12)


def attempt(address: str, port: int = 2575, timeout: float = 30, env: RunEnv | None = None):
    asset = Asset(address, cls="medical-device", fragile=True, zone="clinical",
                  services=[Service(port, name="hl7-mllp")])
    env = env or RunEnv(scope=[f"{address}/32"])
    spec = AttemptSpec("t", "hl7.mllp", asset.to_dict(), port, timeout=timeout, safe_mode=True)
    return execute_attempt(spec, env), env


def test_ack_listener_facts_and_message_sent() -> None:
    peer = MllpPeer("127.77.7.22", 2575, "ack")
    try:
        r, _ = attempt("127.77.7.22")
    finally:
        peer.close()
    assert r.status == "completed", r.detail
    d = dict(r.observations[0].data)
    d.pop("response_ms")
    assert d == {"tls": False, "connected": True, "answered": True,
                 "sent": {"message_type": "ACK", "processing_id": "T", "version": "2.5", "accept_ack": "AL",
                          "application_ack": "NE"},
                 "message_type": "ACK", "msa_code": "AA", "sending_application": "LABENGINE",
                 "sending_facility": "HOSP", "version": "2.5", "processing_id": "T"}
    # exactly one message, and it is our harmless one: MSH-9 ACK, MSH-11 T, no patient/order segments
    [raw] = peer.received
    segs = raw[1:-2].split(b"\r")
    msh = segs[0].split(b"|")
    assert (msh[8], msh[10], msh[14], msh[15]) == (b"ACK", b"T", b"AL", b"NE")
    assert [s[:3] for s in segs if s] == [b"MSH", b"MSA"]


def test_nak_and_bad_peers_bounded() -> None:
    # mode: status, reason, detail, the observation's facts (None: no observation)
    cases = {
        "nak": ("completed", "", "", {"connected": True, "answered": True, "msa_code": "AR"}),
        "silent": ("completed", "", "", {"tls": False, "connected": True, "answered": False, "msa_code": "",
                                         "reason": "no answer before the deadline"}),
        "no-end": ("error", "timeout", "82 bytes but no MLLP end block before the deadline", None),
        "flood": ("error", "protocol", "more than 65536 bytes without an MLLP end block (flood)", None),
        # the detail ends in the TLS library's own words (with its source line), not ours to pin
        "tls-alert": ("error", "protocol", "plaintext: connection closed after 7 bytes without an MLLP end block; "
                                           "TLS: no TLS either: ", None),
    }
    for i, (mode, (status, reason, detail, facts)) in enumerate(cases.items()):
        address = f"127.77.7.{30 + i}"
        peer = MllpPeer(address, 2575, mode)
        try:
            start = time.monotonic()
            r, _ = attempt(address, timeout=6)
            took = time.monotonic() - start
        finally:
            peer.close()
        own_words = r.detail.partition("no TLS either: ")[2] if mode == "tls-alert" else ""
        assert (r.status, r.reason, r.detail.removesuffix(own_words)) == (status, reason, detail), mode
        assert [{k: o.data[k] for k in facts} for o in r.observations] == ([facts] if facts else []), mode
        assert took < 8, (mode, took)


def test_scan_cli_hl7_findings(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": "127.77.7.22", "name": "hl7", "role": "HL7-engine", "class": "medical-device",
         "zone": "clinical", "fragile": True}]}))
    peer = MllpPeer("127.77.7.22", 2575, "ack")
    try:
        _sid, found = scan(["127.77.7.22"], scope=["127.77.7.0/24"], db=tmp_path / "s.db", checks=["hl7"],
                           inventory=str(inv))
    finally:
        peer.close()
    assert {(f["address"], f["rule_id"], f["port"]) for f in found} == {
        ("127.77.7.22", "medical.hl7.unauthenticated-ack", 2575), ("127.77.7.22", "medical.hl7.plaintext", 2575)}


# ------------------------------------------------------------------------------------------------ parsers

@settings(max_examples=300, deadline=200)
@given(st.binary(max_size=2048))
def test_parse_hl7_garbage_never_crashes(data: bytes) -> None:
    try:
        a = parse_hl7(data)
        assert len(a.sending_application) <= 64 and len(a.msa_code) <= 2
    except ProbeError:
        pass


@settings(max_examples=300, deadline=200)
@given(st.binary(max_size=2048))
def test_parse_pdu_garbage_never_crashes(data: bytes) -> None:
    try:
        parse_pdu(data)
    except ProbeError:
        pass


def _feed(data: bytes, reader, **kw):
    a, b = socket.socketpair()
    with a, b:
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        try:
            return reader(a, time.monotonic() + 1.0, **kw)
        except ProbeError as e:
            return e


@settings(max_examples=200, deadline=1500)
@given(st.binary(max_size=4096))
def test_stream_readers_bounded(data: bytes) -> None:
    start = time.monotonic()
    r1 = _feed(data, read_mllp_frame, max_len=1024)
    r2 = _feed(data, read_pdu, max_len=1024)
    assert time.monotonic() - start < 2.5
    assert isinstance(r1, (bytes, ProbeError)) and isinstance(r2, (bytes, ProbeError))
    assert len(r2) <= 1030 if isinstance(r2, bytes) else r2.detail != ""


def test_huge_pdu_refused_unread() -> None:
    r = _feed(struct.pack(">BBI", 2, 0, 100 * 1024 * 1024) + b"\x00" * 1000, read_pdu)
    assert isinstance(r, ProbeError) and "104857600-byte" in r.detail


def test_harmless_message_shape() -> None:
    m = harmless_message("TCMSCANX", "20240101000000")
    assert m == (b"MSH|^~\\&|TCMSCAN|SECURITY-ASSESSMENT|||20240101000000||ACK|TCMSCANX|T|2.5|||AL|NE\r"
                 b"MSA|AA|TCMSCANX-NONE\r")
    a = parse_hl7(m)
    assert (a.message_type, a.processing_id, a.version, a.msa_code) == ("ACK", "T", "2.5", "AA")
