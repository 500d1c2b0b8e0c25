"""http.consoles against peers that hang, flood or lie (scripted servers on 127.16.3.x): "not assessed" with a
reason within the request budget; a catch-all server that answers 200 to everything reports no console; and
hypothesis over the pure parts (cookie flags, frame protection, console facts)."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from checks.http.consoles import Response, console_facts, cookie_flags, frame_protected
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from scanner.sdk.http_wire import Head
from tests.fuzz import bounded, fuzz
from tests.loopback import Scripted


def _attempt(address: str, port: int):
    asset = Asset(address, cls="server", services=[Service(port, name="http")])
    start = time.monotonic()
    r = execute_attempt(AttemptSpec("t", "http.consoles", asset.to_dict(), port, timeout=90),
                        RunEnv(scope=[f"{address}/32"]))
    return r, time.monotonic() - start


def catch_all(conn, _n, first):
    body = b"<html><title>Portal</title>Welcome. swagger-ui-bundle Tomcat Web Application Manager</html>"
    if first.startswith(b"TRACE"):
        conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_catch_all_server_reports_no_console():
    """A server answering every path with one page that happens to carry markers: the random path's answer
    carries them too, so no console is reported."""
    with Scripted(catch_all, "127.16.3.10", read_first=4096, timeout=5) as srv:
        r, _ = _attempt("127.16.3.10", srv.port)
    assert r.status == "completed", r.detail
    consoles = {o.key: o.data for o in r.observations}["consoles"]
    assert (consoles["found"], consoles["not_found_status"]) == ([], 200)


def _silent(conn, _n, _first):
    time.sleep(12)


def _flood(conn, _n, _first):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        conn.sendall(b"X-Junk: " + b"a" * 8000 + b"\r\n")


def _garbage(conn, _n, _first):
    conn.sendall(b"\x00\x01garbage\r\n\r\n")


CASES = {
    "silent": (_silent, "timeout", "GET /: no complete HTTP response header within 8 s"),
    "flood": (_flood, "protocol", "HTTP header larger than 32768 bytes"),
    "garbage": (_garbage, "protocol", "not an HTTP status line: '\\x00\\x01garbage'"),
}


def test_bad_peers_bounded():
    for i, (name, (script, reason, detail)) in enumerate(CASES.items()):
        address = f"127.16.3.{20 + i}"
        with Scripted(script, address, read_first=4096, timeout=12) as srv:
            r, took = _attempt(address, srv.port)
        assert (r.status, r.reason, r.detail) == ("error", reason, detail), name
        assert took < 10, (name, took)


@fuzz
@given(st.lists(st.text(max_size=80), max_size=25))
def test_cookie_flags(values: list[str]) -> None:
    out = bounded(cookie_flags, values)
    assert out is not None and len(out) <= 20 and all(len(c["name"]) <= 60 for c in out)


ENTRIES = st.sampled_from(({"id": "a", "product": "p", "kind": "admin", "path": "/a", "marker": "M"},
                           {"id": "h", "product": "p", "kind": "diagnostic", "path": "/h", "method": "HEAD",
                            "content_type": "application/octet-stream"}))
HEADERS = st.lists(st.tuples(st.sampled_from(("www-authenticate", "content-type", "x-frame-options",
                                              "content-security-policy", "set-cookie")),
                             st.text(max_size=60)), max_size=6)


@fuzz
@given(ENTRIES, st.integers(100, 599), HEADERS, st.binary(max_size=300), st.sampled_from((404, 200, 401)))
def test_console_facts(entry, status, headers, body, not_found_status) -> None:
    r = Response(Head("HTTP/1.1", status, "", headers), body)
    facts = bounded(console_facts, entry, r, Response(Head("HTTP/1.1", not_found_status, "", []), b"M"))
    assert facts is None or (facts["open"] is False or status == 200)
    assert isinstance(bounded(frame_protected, r.head), bool)
