"""backup.http-files against the lab's hostile HTTP behaviours on loopback: each HEAD is bounded in time and
bytes. Its reads had only a per-read timeout (restarted by every byte) and took a head cut at 16 KiB, or the
first bytes of a dripping one, for an answer ("HTTP/1.1 200 O" parsed as status 200)."""

from __future__ import annotations

from checks.backup import http_files
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import Hostile, context, finishes


def _run(behaviour: str, port: int, within: float, name: str = "http"):
    with Hostile(behaviour, port) as h:
        ctx = context(h.address, port, name, "backup.http-files", timeout=60)
        return h.address, finishes(lambda: http_files.run(ctx), within)


def test_dripping_server_is_a_timeout_within_one_request_budget():
    address, (_, error, seconds) = _run("drip", 80, 20)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", f"{address}:80 did not finish its answer to HEAD within 8 s")
    assert seconds < 9


def test_huge_headers_are_a_protocol_error():
    address, (_, error, seconds) = _run("http-huge-headers", 8080, 20)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", f"{address}:8080 answered HEAD with a head over 16384 bytes")
    assert seconds < 2


def test_redirect_loop_is_asked_once_per_path():
    _, (result, error, _) = _run("http-redirect-loop", 80, 30)
    assert error is None
    [obs] = result
    assert obs.data == {"tried": 20, "exposed": [], "catch_all": False}


def test_silent_tls_port_is_a_timeout():
    address, (_, error, seconds) = _run("silent", 443, 20, name="https")
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", f"{address}:443: TLS handshake not done within 8 s")
    assert seconds < 9
