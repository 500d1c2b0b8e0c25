"""Bad input for http.probe: hypothesis on the response parsers, and real misbehaving TCP servers on loopback
(garbage, silence, one byte a second, an endless header, endless body, TLS expected but not spoken)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.http import probe
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError
from scanner.sdk.http_wire import (
    MAX_BODY,
    HttpError,
    dechunk,
    page_facts,
    parse_head,
    parse_hsts,
    parse_www_authenticate,
)
from tests.loopback import ScriptedServer


@given(st.binary(max_size=4000))
@settings(max_examples=300, deadline=300)
def test_parse_head_garbage(raw):
    try:
        h = parse_head(raw)
    except HttpError:
        return
    assert 100 <= h.status <= 999 and len(h.headers) <= 200


@given(st.text(max_size=600))
@settings(max_examples=300, deadline=300)
def test_header_value_parsers_garbage(text):
    h = parse_hsts(text)
    assert h is None or h["max_age"] is None or isinstance(h["max_age"], int)
    for c in parse_www_authenticate([text, text]):
        assert set(c) == {"scheme", "realm"} and "=" not in c["scheme"]


@given(st.binary(max_size=6000))
@settings(max_examples=300, deadline=300)
def test_body_parsers_garbage(raw):
    assert len(dechunk(raw)) <= MAX_BODY
    f = page_facts(raw, "text/html; charset=gb2312")
    assert isinstance(f["password_form"], bool) and len(f["title"]) <= 120


def test_parsers_known_values():
    assert parse_hsts("max-age=15552000 ; includeSubDomains; preload") == {
        "max_age": 15552000, "include_subdomains": True, "preload": True,
        "raw": "max-age=15552000 ; includeSubDomains; preload"}
    assert parse_hsts("includeSubDomains")["max_age"] is None
    assert parse_www_authenticate(['Digest realm="ward, 3", qop="auth", nonce="abc"', "Negotiate"]) == [
        {"scheme": "Digest", "realm": "ward, 3"}, {"scheme": "Negotiate", "realm": None}]
    assert dechunk(b"4\r\n<inp\r\n18\r\nut type=password name=p>\r\n0\r\n\r\n") == b"<input type=password name=p>"
    assert page_facts(b"<input\n  type = 'Password'>", None)["password_form"] is True


def _garbage(c, stop):
    c.sendall(bytes(range(256)) * 8)


def _silent(c, stop):
    stop.wait(10)


def _slow(c, stop):
    for ch in b"HTTP/1.1 200 OK\r\nServer: slow\r\n\r\n":
        if stop.wait(1.0):
            return
        c.sendall(bytes([ch]))


def _endless_header(c, stop):
    c.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.is_set():
        c.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")


def _endless_body(c, stop):
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n")
    while not stop.is_set():
        c.sendall(b"<p>" + b"x" * 4096)


CASES = [
    ("garbage", 80, _garbage, "protocol", "not an HTTP status line"),
    ("silent", 80, _silent, "timeout", "no complete HTTP response header"),
    ("one-byte-a-second", 80, _slow, "timeout", "no complete HTTP response header"),
    ("endless-header", 80, _endless_header, "protocol", "HTTP header larger than"),
    ("plaintext-on-443", 443, _garbage, "protocol", "TLS handshake"),
]


def ctx_for(address: str, port: int, budget: float) -> CheckContext:
    asset = Asset(address=address, services=[Service(port=port, name="https" if port == 443 else "http")])
    return CheckContext(asset=asset, service=asset.services[0], check_id="http.probe",
                        env=RunEnv(scope=["127.44.9.0/24"]), timeout=budget, safe_mode=False)


@pytest.mark.parametrize("name,port,behaviour,reason,detail", CASES, ids=[c[0] for c in CASES])
def test_misbehaving_server_ends_in_time(name, port, behaviour, reason, detail):
    address = f"127.44.9.{[c[0] for c in CASES].index(name) + 2}"
    server = ScriptedServer(address, port, behaviour, read_first=True)
    try:
        t0 = time.monotonic()
        with pytest.raises(CheckError) as e:
            probe.run(ctx_for(address, port, 3.0))
        assert time.monotonic() - t0 < 3.5
        assert (e.value.reason, detail in e.value.detail) == (reason, True), e.value.detail
    finally:
        server.close()


def test_endless_body_is_cut_at_the_bound():
    server = ScriptedServer("127.44.9.20", 80, _endless_body, read_first=True)
    try:
        t0 = time.monotonic()
        [obs] = probe.run(ctx_for("127.44.9.20", 80, 5.0))
        assert time.monotonic() - t0 < 5.5
        assert obs.data["status"] == 200 and obs.data["body_bytes"] == MAX_BODY
    finally:
        server.close()
