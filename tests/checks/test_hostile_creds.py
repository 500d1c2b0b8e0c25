"""creds.default's telnet and MySQL logins against the lab's hostile behaviours on loopback.

A telnet port that never showed a login prompt was "refused" (no pair tried, read as a pass); PyMySQL read a
greeting dripping one byte a second for as long as the server went on (its timeout restarts with every byte),
and a 16 MiB packet length was read as announced."""

from __future__ import annotations

from checks.creds import _logins as logins
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import Hostile, context, finishes


def _login(fn, behaviour: str, port: int, name: str, timeout: float, within: float):
    with Hostile(behaviour, port) as h:
        ctx = context(h.address, port, name, "creds.default", timeout=timeout)
        return finishes(lambda: fn(ctx, "admin", "admin"), within)


def test_telnet_without_a_prompt_is_not_a_refusal():
    _, error, seconds = _login(logins.telnet_login, "silent", 23, "telnet", 30, 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "telnet: no login prompt (nothing shown) within 10 s")
    assert seconds < 11


def test_telnet_dripping_text_is_a_protocol_error():
    _, error, _ = _login(logins.telnet_login, "drip", 23, "telnet", 30, 15)
    assert isinstance(error, CheckError)
    assert error.reason == "protocol"
    assert error.detail.startswith("telnet: no login prompt within 10 s (")


def test_mysql_dripping_greeting_ends_in_time():
    _, error, seconds = _login(logins.mysql_login, "drip", 3306, "mysql", 4.4, 15)   # "4 s" even on a slow machine
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "MySQL login: not done within 4 s (the peer is too slow)")
    assert seconds < 5


def test_mysql_flood_is_cut_at_the_byte_budget():
    _, error, seconds = _login(logins.mysql_login, "flood", 3306, "mysql", 30, 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", "MySQL login: the peer sent more than 65536 bytes")
    assert seconds < 2
