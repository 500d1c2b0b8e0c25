"""Bad input for smb.negotiate and smb.shares: real misbehaving TCP servers on loopback (garbage, a connection
dropped mid-negotiation or before any answer, an absurd length, an absurd dialect, silence, one byte a second,
a flood). Each attempt ends with a CheckError reason inside its time budget; nothing else escapes, and nothing
is printed by impacket's loggers."""

from __future__ import annotations

import os
import time

import pytest

from checks.smb import negotiate, shares
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import context
from tests.checks.smb_answers import framed, smb2_answer
from tests.loopback import Scripted

BASE = "127.15.1"
PORT = 4450          # any port: the check connects to the service's port


def _garbage(c, n, first):
    c.sendall(b"\x85" + os.urandom(2000))


def _huge(c, n, first):
    c.sendall(b"\x00\xff\xff\xff" + b"\xfeSMB")
    time.sleep(3)


def _drop_mid(c, n, first):
    c.sendall(framed(smb2_answer())[:30])      # half an answer, then the connection ends


def _drop(c, n, first):
    pass                                       # read the request, close without a word


def _absurd_dialect(c, n, first):
    c.sendall(framed(smb2_answer(dialect=0x7777)))


def _silent(c, n, first):
    time.sleep(5)


def _slow(c, n, first):
    for b in framed(smb2_answer()):
        time.sleep(1)
        c.sendall(bytes([b]))


def _flood(c, n, first):
    end = time.monotonic() + 5
    chunk = framed(b"\xfeSMB" + b"\x00" * 60000)
    while time.monotonic() < end:
        c.sendall(chunk)


NEGOTIATE_CASES = [
    ("garbage", _garbage, "protocol", "not an SMB direct-TCP frame"),
    ("absurd-length", _huge, "protocol", "announced (limit 65536)"),
    ("drop-mid-negotiation", _drop_mid, "protocol", "connection closed by the server mid-message"),
    ("drop-before-answer", _drop, "protocol", "every dialect refused: NT LM 0.12 (connection closed)"),
    ("absurd-dialect", _absurd_dialect, "protocol", "2.0.2 (answered 0x7777)"),
    ("silent", _silent, "timeout", "no complete answer in time"),
    ("one-byte-a-second", _slow, "timeout", "no complete answer in time"),
]


@pytest.mark.parametrize("name,talk,reason,detail", NEGOTIATE_CASES, ids=[c[0] for c in NEGOTIATE_CASES])
def test_negotiate_against_misbehaving_servers(name, talk, reason, detail, capsys):
    address = f"{BASE}.{2 + [c[0] for c in NEGOTIATE_CASES].index(name)}"
    with Scripted(talk, address, PORT, read_first=4096, timeout=10):
        ctx = context(address, PORT, "microsoft-ds", "smb.negotiate", timeout=3.0)
        t0 = time.monotonic()
        with pytest.raises(CheckError) as e:
            negotiate.run(ctx)
        assert time.monotonic() - t0 < 3.5
    assert (e.value.reason, detail in e.value.detail) == (reason, True), e.value.detail
    assert capsys.readouterr() == ("", "")


SHARES_CASES = [
    ("garbage", _garbage, "protocol", "SMB negotiate:"),
    ("drop-before-answer", _drop, "protocol", "SMB negotiate:"),
    # impacket's own read timeout or our BoundedSocket's deadline, whichever fires first: both say timeout
    ("silent", _silent, "timeout", "SMB "),
    ("one-byte-a-second", _slow, "timeout", "SMB "),
    # 16 MiB within 3 s, or the deadline first on a loaded machine: either ends it in time
    ("flood", _flood, "protocol|timeout", "SMB session: "),
]


@pytest.mark.parametrize("name,talk,reason,detail", SHARES_CASES, ids=[c[0] for c in SHARES_CASES])
def test_shares_against_misbehaving_servers(name, talk, reason, detail, capsys):
    address = f"{BASE}.{20 + [c[0] for c in SHARES_CASES].index(name)}"
    with Scripted(talk, address, PORT, read_first=4096, timeout=10):
        ctx = context(address, PORT, "microsoft-ds", "smb.shares", timeout=3.0)
        t0 = time.monotonic()
        with pytest.raises(CheckError) as e:
            shares.run(ctx)
        assert time.monotonic() - t0 < 3.5
    assert (e.value.reason in reason.split("|"), detail in e.value.detail) == (True, True), e.value.detail
    assert capsys.readouterr() == ("", "")
