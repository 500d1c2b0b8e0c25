"""Bad input for ldap.anonymous: real misbehaving TCP servers on loopback (garbage, a connection dropped before or
in the middle of an answer, an absurd BER length, silence, one byte a second, a flood). Each attempt ends with a
CheckError reason inside its time budget; nothing else escapes and nothing is printed by ldap3's loggers."""

from __future__ import annotations

import os
import time

import pytest

from checks.ldap import anonymous
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import context
from tests.loopback import Scripted

BASE = "127.25.2"
PORT = 3890
# BindResponse, messageID 1, success: what any LDAP server says first to an anonymous bind
BIND_OK = bytes.fromhex("300c02010161070a010004000400")


def _garbage(c, n, first):
    c.sendall(b"\x85" + os.urandom(2000))


def _drop(c, n, first):
    pass


def _drop_mid(c, n, first):
    c.sendall(BIND_OK[:7])


def _absurd_length(c, n, first):
    c.sendall(b"\x30\x84\x7f\xff\xff\xff\x02\x01\x01")
    time.sleep(5)


def _silent(c, n, first):
    time.sleep(5)


def _slow(c, n, first):
    for b in BIND_OK:
        time.sleep(1)
        c.sendall(bytes([b]))


def _flood(c, n, first):
    end = time.monotonic() + 5
    block = b"\x30\x84\x00\x0f\xff\xff" + b"\x04" * 65536
    while time.monotonic() < end:
        c.sendall(block)


def _bind_then_garbage(c, n, first):
    c.sendall(BIND_OK)
    c.recv(4096)
    c.sendall(b"\x30\x03\x02\x01\x02" + os.urandom(64))


CASES = [
    ("garbage", _garbage, "protocol", "LDAP anonymous bind:"),
    ("drop-before-answer", _drop, "protocol", "LDAP anonymous bind:"),
    ("drop-mid-answer", _drop_mid, "protocol", "LDAP anonymous bind:"),
    ("absurd-ber-length", _absurd_length, "timeout", "LDAP session: not done within 3 s"),
    ("silent", _silent, "timeout", "LDAP session: nothing received within 3 s"),
    ("one-byte-a-second", _slow, "timeout", "LDAP session: not done within 3 s"),
    # ldap3 reads 4 KiB at a time and joins the pieces: whether the byte budget (8 MiB) or the 3 s deadline ends it
    # first depends on the machine's load; either ends it in time
    ("flood", _flood, "timeout|protocol", "LDAP session: "),
    ("answer-then-garbage", _bind_then_garbage, "protocol", "LDAPSocketReceiveError"),
]


@pytest.mark.parametrize("name,talk,reason,detail", CASES, ids=[c[0] for c in CASES])
def test_misbehaving_servers(name, talk, reason, detail, capsys):
    address = f"{BASE}.{2 + [c[0] for c in CASES].index(name)}"
    with Scripted(talk, address, PORT, read_first=4096, timeout=10):
        ctx = context(address, PORT, "ldap", "ldap.anonymous", timeout=3.0)
        t0 = time.monotonic()
        with pytest.raises(CheckError) as e:
            anonymous.run(ctx)
        assert time.monotonic() - t0 < 3.5
    assert (e.value.reason in reason.split("|"), detail in e.value.detail) == (True, True), e.value.detail
    assert capsys.readouterr() == ("", "")


class _FakeSession:
    """Just enough of checks.ldap._session.Session for the unsigned SASL probe: each bind answers `answers[i]`."""

    def __init__(self, answers):
        self.answers, self.sent = list(answers), []

        class Conn:
            result: dict = {}
            sasl_mechanism = None
        self.conn = Conn()

    def call(self, step, fn, conn, controls, payload):
        self.sent.append(payload)
        answer = self.answers.pop(0)
        if isinstance(answer, CheckError):
            raise answer
        self.conn.result = answer


@pytest.mark.parametrize("answers,stage,result", [
    # the peer breaks the exchange (dropped, garbage, budget): recorded, the facts read before stay
    ([CheckError("protocol", "LDAP unsigned SASL bind: LDAPSessionTerminatedByServerError")], "exchange", None),
    # saslBindInProgress with a challenge that is no SPNEGO token
    ([{"result": 14, "description": "saslBindInProgress", "message": "", "saslCreds": os.urandom(40)}],
     "challenge", None),
    ([{"result": 14, "description": "saslBindInProgress", "message": "", "saslCreds": b""}], "challenge", None),
    ([{"result": 7, "description": "authMethodNotSupported", "message": "no", "saslCreds": None}], "mechanism", 7),
])
def test_unsigned_sasl_probe_on_bad_answers(answers, stage, result):
    s = _FakeSession(answers)
    got = anonymous._unsigned_sasl_bind(s)
    assert (got["stage"], got["result"]) == (stage, result)
    assert s.conn.sasl_mechanism == "GSS-SPNEGO" and len(s.sent) == 1
