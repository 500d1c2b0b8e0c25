"""Bad input for ssh.kex: hypothesis on the wire parsers, and real misbehaving TCP servers on loopback
(garbage, truncated packet, huge packet length, silence, one byte a second). Each attempt must end with a
CheckError reason inside its time budget; nothing else may escape.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.ssh import kex as sshkex
from checks.ssh._wire import (
    Buf,
    Reader,
    WireError,
    kexinit_payload,
    packet,
    parse_banner_line,
    parse_kexinit,
    read_banner,
    read_packet,
)
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError
from tests.loopback import ScriptedServer

NAMES = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-@.", min_size=1, max_size=30), max_size=8)


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=200)
def test_banner_line_garbage(raw):
    try:
        b = parse_banner_line(raw)
    except WireError as e:
        assert e.reason == "protocol"
        return
    assert b is None or b.raw.startswith("SSH-")


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=200)
def test_kexinit_garbage(raw):
    try:
        parse_kexinit(raw)
    except WireError as e:
        assert e.reason == "protocol"


@given(NAMES, NAMES, NAMES, NAMES)
@settings(max_examples=100, deadline=200)
def test_kexinit_roundtrip(kex, keys, ciphers, macs):
    k = parse_kexinit(kexinit_payload(kex, keys, ciphers, macs))
    assert (k.kex, k.host_key, k.ciphers_c2s, k.ciphers_s2c, k.macs_c2s) == (kex, keys, ciphers, ciphers, macs)
    assert k.compression_c2s == ["none"] and not k.first_kex_follows


@given(st.binary(max_size=3000))
@settings(max_examples=150, deadline=500, suppress_health_check=[HealthCheck.too_slow])
def test_reader_over_a_real_socket(raw):
    """Whatever bytes arrive before EOF: a banner/packet, or WireError; never a hang (deadline 1 s)."""
    a, b = socket.socketpair()
    try:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        r = Reader(b, time.monotonic() + 1.0)
        try:
            read_banner(r)
            read_packet(r)
        except WireError as e:
            assert e.reason in ("protocol", "timeout")
    finally:
        a.close()
        b.close()


def test_packet_framing_roundtrip():
    payload = kexinit_payload(["curve25519-sha256"], ["ssh-ed25519"], ["aes128-ctr"], ["hmac-sha2-256"])
    a, b = socket.socketpair()
    a.sendall(packet(payload))
    assert read_packet(Reader(b, time.monotonic() + 1)) == payload
    a.close()
    b.close()
    with pytest.raises(WireError):
        Buf(b"\x00\x00\x00\x10abc").string()


BANNER = b"SSH-2.0-Misbehaving_1.0\r\n"


def _garbage(c, stop):
    c.sendall(bytes(range(11, 256)) * 4)   # no newline: the identification line never ends
    stop.wait(5)


def _many_lines(c, stop):
    c.sendall(b"hello there\r\n" * 50)
    stop.wait(5)


def _truncated(c, stop):
    c.sendall(BANNER + struct.pack(">IB", 500, 4) + b"\x14abc")   # KEXINIT cut short, then EOF


def _huge(c, stop):
    c.sendall(BANNER + struct.pack(">IB", 0x7FFFFFFF, 4))
    stop.wait(5)


def _silent(c, stop):
    stop.wait(10)


def _slow(c, stop):
    for ch in BANNER:
        if stop.wait(1.0):
            return
        c.sendall(bytes([ch]))


def _disconnect(c, stop):
    msg = b"\x01" + struct.pack(">I", 2) + struct.pack(">I", 9) + b"go away!!" + struct.pack(">I", 0)
    c.sendall(BANNER + packet(msg))


CASES = [
    ("garbage", _garbage, "protocol", "longer than"),
    ("many-lines", _many_lines, "protocol", "no SSH identification line"),
    ("truncated", _truncated, "protocol", "connection closed"),
    ("huge-length", _huge, "protocol", "exceeds"),
    ("silent", _silent, "timeout", "deadline"),
    ("one-byte-a-second", _slow, "timeout", "deadline"),
    ("disconnect", _disconnect, "protocol", "server disconnected (code 2): go away!!"),
]


@pytest.mark.parametrize("name,behaviour,reason,detail", CASES, ids=[c[0] for c in CASES])
def test_misbehaving_server_ends_in_time(name, behaviour, reason, detail):
    address = f"127.44.6.{CASES.index(next(c for c in CASES if c[0] == name)) + 2}"
    server = ScriptedServer(address, 22, behaviour)
    try:
        asset = Asset(address=address, services=[Service(port=22, name="ssh")])
        budget = 3.0
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="ssh.kex",
                           env=RunEnv(scope=["127.44.6.0/24"]), timeout=budget, safe_mode=False)
        t0 = time.monotonic()
        with pytest.raises(CheckError) as e:
            sshkex.run(ctx)
        assert time.monotonic() - t0 < budget + 0.5
        assert e.value.reason == reason
        assert detail in e.value.detail
    finally:
        server.close()


def test_ssh1_server_is_reported_as_protocol_1():
    """A FAKE SSH-1.5 server (no SSH-1 implementation exists in Debian any more): banner only."""
    server = ScriptedServer("127.44.6.30", 22, lambda c, stop: (c.sendall(b"SSH-1.5-OldSwitch_2.0\r\n"), stop.wait(2)))
    try:
        asset = Asset(address="127.44.6.30", services=[Service(port=22, name="ssh")])
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="ssh.kex",
                           env=RunEnv(scope=["127.44.6.0/24"]), timeout=5, safe_mode=False)
        [obs] = sshkex.run(ctx)
        assert obs.key == "algorithms"
        assert obs.data == {"banner": "SSH-1.5-OldSwitch_2.0", "protocol": "1.5", "software": "OldSwitch_2.0",
                            "kex": [], "host_key": [], "ciphers": [], "macs": [], "compression": [],
                            "ciphers_s2c": [], "macs_s2c": [], "compression_s2c": [], "host_keys": []}
    finally:
        server.close()


def test_protocol_1_rule():
    """crypto.ssh.protocol-1 fires on 1.5 and 1.99 banners and not on 2.0 (rule evaluation on real observations)."""
    from scanner.assess.baseline import load_profile
    from scanner.assess.evaluate import evaluate_scan
    from scanner.core.models import Observation

    profile = load_profile("tcm-2024-l3")
    assets, attempts, obs = [], [], []
    for i, proto in enumerate(("1.5", "1.99", "2.0")):
        addr = f"127.44.6.{40 + i}"
        assets.append(Asset(address=addr, services=[Service(port=22, name="ssh")]))
        attempts.append({"check_id": "ssh.kex", "address": addr, "status": "completed", "reason": "", "detail": ""})
        obs.append(Observation("ssh.kex", addr, 22, "algorithms", {
            "banner": f"SSH-{proto}-x", "protocol": proto, "software": "x", "kex": [], "host_key": [], "ciphers": [],
            "macs": [], "compression": [], "host_keys": []}))
    found, _ = evaluate_scan(profile, assets, attempts, obs)
    assert {(f.address, f.rule_id) for f in found} == {("127.44.6.40", "crypto.ssh.protocol-1"),
                                                   ("127.44.6.41", "crypto.ssh.protocol-1")}
