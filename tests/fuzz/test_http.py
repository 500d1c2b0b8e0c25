"""HTTP as http.probe, creds.default and backup.http-files read it: response heads, header values, bodies and
login forms from a server sending anything. Pure parsers raise nothing but HttpError; the bounded head reader
raises CheckError only."""

from __future__ import annotations

import random
import socket
import time

from hypothesis import example, given
from hypothesis import strategies as st

from checks.backup.http_files import parse_head as backup_head
from checks.creds import _forms as forms
from checks.creds import _web as web
from checks.creds._web import parse_set_cookies
from checks.http import probe
from checks.http.probe import content_length, response_facts
from scanner.core.models import Asset, Service
from scanner.sdk import http_wire as hw
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError
from tests.fuzz import bounded, fuzz, mutated, peer
from tests.loopback import Scripted

HEAD = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: 120\r\nStrict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
        b"WWW-Authenticate: Basic realm=\"HIS\", Digest realm=\"x\", qop=\"auth\"\r\n"
        b"Set-Cookie: sid=abc123; Path=/; HttpOnly\r\nLocation: https://his.local/login\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
PAGE = (b"<html><head><meta charset=\"gbk\"><title>HIS \xb5\xc7\xc2\xbc</title></head><body>"
        b"<form action=\"/login\" method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"t\">"
        b"<input name=\"username\"><input type=\"password\" name=\"pw\"><input type=\"submit\" name=\"go\">"
        b"</form></body></html>")
CHUNKED = b"5\r\nhello\r\n1a;ext=1\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n"


@fuzz
@given(st.one_of(st.binary(max_size=4000), mutated(st.just(HEAD))))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\nLocation: http://[x\r\n\r\n")   # superscript two; bad IPv6
@example(b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=\xb9\r\n\r\n")
def test_response_head_and_what_is_read_from_it(raw: bytes) -> None:
    head = bounded(hw.parse_head, raw.split(b"\r\n\r\n", 1)[0], allowed=(hw.HttpError,))
    if head is None:
        return
    assert 100 <= head.status <= 999
    bounded(hw.parse_hsts, head.get("strict-transport-security"))
    bounded(hw.parse_www_authenticate, head.get_all("www-authenticate"))
    bounded(parse_set_cookies, head.get_all("set-cookie"))
    length = bounded(content_length, head)
    assert length is None or length >= 0
    facts = bounded(response_facts, head, PAGE, "http://127.0.0.1/", False)
    assert facts["status"] == head.status and isinstance(facts["location"], str)
    back = bounded(backup_head, raw)
    assert back is None or 0 <= back["status"] <= 999


@fuzz
@given(st.text(max_size=600))
@example("max-age=\u00b2")
def test_header_values(value: str) -> None:
    hsts = bounded(hw.parse_hsts, value)
    assert hsts["max_age"] is None or hsts["max_age"] >= 0
    assert all(len(c["scheme"]) <= 40 for c in bounded(hw.parse_www_authenticate, [value]))
    assert all(";" not in v for v in bounded(parse_set_cookies, [value]).values())


@fuzz
@given(st.one_of(st.binary(max_size=6000), mutated(st.just(PAGE)), mutated(st.just(CHUNKED))),
       st.sampled_from(("text/html", "text/html; charset=gbk", "text/html; charset=undefined",
                        "text/html; charset=idna", "text/html; charset=punycode", "text/html; charset=nope")))
@example(b"<title>\xff</title>", "text/html; charset=undefined")
@example(b"<meta charset=idna><form><input type=password name=p></form>", None)
def test_bodies_and_login_forms(body: bytes, content_type: str | None) -> None:
    facts = bounded(hw.page_facts, body, content_type)
    assert len(facts["title"]) <= 120
    assert len(bounded(hw.dechunk, body)) <= hw.MAX_BODY
    page = bounded(forms.parse_page, body, content_type)
    form = forms.login_form(page)
    if form is not None:
        bounded(forms.form_facts, form, "/login")
        bounded(forms.submission, form, "user", "password")


@fuzz
@given(st.one_of(st.binary(max_size=40000), mutated(st.just(HEAD + PAGE))))
def test_response_head_reader_with_any_peer(sent: bytes) -> None:
    with peer(sent) as sock:
        got = bounded(hw.read_response_head, sock, time.monotonic() + 2.0, "timeout", allowed=(CheckError,))
    assert got is None or isinstance(got[0], hw.Head)


ODD = b"HTTP/1.1 302 Found\r\nContent-Length: \xb2\r\nLocation: http://[x\r\nConnection: close\r\n\r\nhi"


def _odd(conn: socket.socket, _n: int, _first: bytes) -> None:
    conn.sendall(ODD)


def test_a_response_the_checks_once_crashed_on() -> None:
    """Content-Length "\u00b2" (isdigit() but not int()) and a Location that is not a URL, from a real server."""
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    with Scripted(_odd, address, read_first=4096, timeout=5) as server:
        asset = Asset(address=address, services=[Service(port=server.port, name="http")])
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="http.probe",
                           env=RunEnv(scope=[f"{address}/32"]), timeout=10.0, safe_mode=False)
        [obs] = probe.run(ctx)
        assert (obs.data["status"], obs.data["location"], obs.data["redirect_https"], obs.data["body_bytes"]) == \
            (302, "http://[x", False, 2)
        resp = web.request(ctx, web.Origin(address, server.port, False), "GET", "/")
        assert (resp.status, resp.body, resp.truncated) == (302, b"hi", False)
