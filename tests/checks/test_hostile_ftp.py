"""The SDK's FTP session (services.ftp-anonymous, creds.default) against the lab's hostile behaviours on loopback.

ftplib's timeout restarts with every byte and its only other bound is 8192 bytes a line: a server dripping one
byte a second held an attempt until the runner gave up on it (its thread left running), and a silent or
resetting server raised TimeoutError / ConnectionResetError out of the check (recorded as a bug of ours)."""

from __future__ import annotations

from checks.services import ftp_anonymous
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import Hostile, context, finishes


def _run(behaviour: str, timeout: float, within: float):
    with Hostile(behaviour, 21) as h:
        ctx = context(h.address, 21, "ftp", "services.ftp-anonymous", timeout=timeout)
        return finishes(lambda: ftp_anonymous.run(ctx), within)


def test_silent_server_is_a_timeout_not_a_bug():
    _, error, seconds = _run("silent", 20, 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "FTP greeting: nothing received within 6 s")
    assert seconds < 8


def test_resetting_server_is_a_connectivity_error_not_a_bug():
    _, error, seconds = _run("reset", 20, 10)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("connectivity", "FTP greeting: connection failed: Connection reset by peer")
    assert seconds < 2


def test_dripping_greeting_ends_in_its_own_time():
    _, error, seconds = _run("drip", 20, 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "FTP greeting: not done within 6 s (the peer is too slow)")
    assert seconds < 7


def test_flooding_server_is_a_protocol_error():
    _, error, seconds = _run("flood", 20, 10)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", "not an FTP greeting: got more than 8192 bytes")
    assert seconds < 2
