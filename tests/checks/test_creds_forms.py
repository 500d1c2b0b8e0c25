"""creds.default on device-console HTML login forms, end to end: real HTTP consoles on loopback addresses of
their own (http.server / raw sockets, port 80), one `tcmscan scan` through the CLI into a real SQLite file,
exact findings, observations and attempt outcomes.

127.66.0.1  console: CSRF field + session cookie, admin/admin -> 302 /dashboard with an auth cookie
127.66.0.2  console that REQUIRES a fresh single-use CSRF token (403 without it), accepts admin/<empty>
127.66.0.3  console that never accepts anything ("Invalid user name or password")
127.66.0.4  console that answers 429 to every login (lockout-ish)
127.66.0.5  fragile infusion pump, no inventory permission: the form is never submitted (skipped: safe-mode)
127.66.0.6  fragile infusion pump with default_credentials_allowed: the medical rule
127.66.0.7  hostile: a 20 MB page (the form at its very end, past our 256 KiB bound)
127.66.0.8  hostile: an endless body
127.66.0.9  hostile: garbage HTML (a change-password form, a loose password input, binary junk)
127.66.0.10 the console of .1 over HTTPS on 443 (self-signed: we test the login, not the certificate)
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.creds import _forms as forms
from checks.creds import _web as web
from checks.creds import default
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError
from tests.checks import services_daemons as d
from tests.helpers import observations, scan, tcmscan
from tests.loopback import ScriptedServer

GOOD, CSRF, NEVER, THROTTLE, FRAGILE_NO, FRAGILE_YES, HUGE, ENDLESS, GARBAGE, TLS = (f"127.66.0.{i}" for i in
                                                                                    range(1, 11))
FORM_FACTS = {"action": "/login", "method": "post", "user_field": "username", "password_field": "password",
              "hidden": ["csrf_token"]}
ACCEPTED = ("POST /login answered 302 to /dashboard, which answered 200 without a password field or error text, "
            "session cookie set: accepted; logged out with GET /logout")
NOT_A_CONSOLE = ("/ asks for neither HTTP Basic authentication nor a login form (HTTP 200, page cut at 256 KiB), "
                 "and no listed admin console answers with a Basic challenge")


def _huge(c, stop):
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 20000000\r\n\r\n<html><p>")
    filler = b"<p>" + b"x" * 65533
    for _ in range(300):
        if stop.is_set():
            return
        c.sendall(filler)
    c.sendall(b"<form method=post action=/login><input name=u><input type=password name=p></form>")


def _endless(c, stop):
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><title>stream</title>")
    while not stop.is_set():
        c.sendall(b"<div>" + b"y" * 8192)


GARBAGE_BODY = (b"<html><title>\xff\xfe junk</title><form action='/pw' method=post><input type=password name=old>"
                b"<input type=password name=new></form><input type=password name=loose><<<!--x<form "
                + random.Random(7).randbytes(40000) + b"<input type=\"password\" <form action=javascript:x>"
                b"</form></form><![CDATA[ <select><option selected><textarea></html")


def _garbage(c, stop):
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=gb2312\r\nContent-Length: "
              + str(len(GARBAGE_BODY)).encode() + b"\r\n\r\n" + GARBAGE_BODY)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forms")
    consoles = {
        GOOD: d.FormConsole(GOOD, 80, accept={("admin", "admin")}, title="Ward Gateway"),
        CSRF: d.FormConsole(CSRF, 80, accept={("admin", "")}, csrf="required"),
        NEVER: d.FormConsole(NEVER, 80, accept=set()),
        THROTTLE: d.FormConsole(THROTTLE, 80, accept={("admin", "admin")}, throttle=True),
        FRAGILE_NO: d.FormConsole(FRAGILE_NO, 80, accept={("admin", "admin")}, title="Infusion Pump"),
        FRAGILE_YES: d.FormConsole(FRAGILE_YES, 80, accept={("admin", "admin")}, title="Infusion Pump"),
        TLS: d.FormConsole(TLS, 443, accept={("admin", "admin")}, tls_dir=tmp),
    }
    hostile = [ScriptedServer(HUGE, 80, _huge, read_first=True),
               ScriptedServer(ENDLESS, 80, _endless, read_first=True),
               ScriptedServer(GARBAGE, 80, _garbage, read_first=True)]
    try:
        inv = tmp / "inventory.yaml"
        inv.write_text(yaml.safe_dump({"assets": [
            {"address": FRAGILE_NO, "name": "pump-no", "role": "infusion-pump", "fragile": True},
            {"address": FRAGILE_YES, "name": "pump-yes", "role": "infusion-pump", "fragile": True,
             "default_credentials_allowed": True}]}))
        db = tmp / "scan.db"
        t0 = time.monotonic()
        scan_id, found = scan([GOOD, CSRF, NEVER, THROTTLE, FRAGILE_NO, FRAGILE_YES, HUGE, ENDLESS, GARBAGE, TLS],
                              scope=["127.66.0.0/24"], db=db, inventory=str(inv), checks=["creds.default"])
        seconds = time.monotonic() - t0
        p = tcmscan("attempts", scan_id, "--format", "json", db=db, check=True)
        attempts = {(a["address"], a["port"]): a for a in json.loads(p.stdout) if a["check_id"] == "creds.default"}
        yield {"db": db, "findings": found, "obs": observations(db, scan_id), "attempts": attempts,
               "consoles": consoles, "seconds": seconds}
    finally:
        for c in consoles.values():
            c.close()
        for s in hostile:
            s.close()


def test_findings_exact(result):
    assert {(f["address"], f["rule_id"], f["port"]) for f in result["findings"]} == {
        (GOOD, "accounts.default-credentials", 80),
        (CSRF, "accounts.default-credentials", 80),
        (FRAGILE_YES, "medical.device.default-login", 80),
        (TLS, "accounts.default-credentials", 443),
    }
    assert result["seconds"] < 60


def test_observations_exact(result):
    got = {o["address"]: o["data"] for o in result["obs"] if o["check_id"] == "creds.default"}
    common = {"service": "http-form", "form": FORM_FACTS, "page": "/"}
    assert got[GOOD] == {**common, "accepted": True, "user": "admin", "entry": "form-admin-admin", "tried": 1,
                         "detail": "HTTP 302", "decision": ACCEPTED}
    # the first pair was refused by the CSRF-checking console only because it was wrong: a fresh page (new token,
    # new session) was fetched for the second pair, which it accepted
    assert got[CSRF] == {**common, "accepted": True, "user": "admin", "entry": "form-admin-empty", "tried": 2,
                         "detail": "HTTP 302", "decision": ACCEPTED}
    assert got[NEVER] == {**common, "accepted": False, "user": "", "entry": "", "tried": 3, "detail": "HTTP 200",
                          "decision": "POST /login answered 200 with the login form again and the text 'Invalid': "
                                      "refused"}
    assert got[FRAGILE_YES]["accepted"] is True and got[FRAGILE_YES]["entry"] == "form-admin-admin"
    assert got[TLS] == {**common, "service": "https-form", "accepted": True, "user": "admin",
                        "entry": "form-admin-admin", "tried": 1, "detail": "HTTP 302", "decision": ACCEPTED}
    assert set(got) == {GOOD, CSRF, NEVER, FRAGILE_YES, TLS}


def test_each_pair_sent_once_and_never_more_than_three(result):
    c = result["consoles"]
    sent = {a: [(p.get("username"), p.get("password")) for p in c[a].posts] for a in c}
    assert sent == {GOOD: [("admin", "admin")], CSRF: [("admin", "admin"), ("admin", "")],
                    NEVER: [("admin", "admin"), ("admin", ""), ("admin", "password")],
                    THROTTLE: [("admin", "admin")], FRAGILE_NO: [], FRAGILE_YES: [("admin", "admin")],
                    TLS: [("admin", "admin")]}
    # the CSRF token of the page went back each time (the console rejects a POST without it with 403)
    assert all(p["csrf_token"] in c[CSRF].issued for p in c[CSRF].posts)
    # our session was closed after each accepted login
    assert (c[GOOD].logouts, c[CSRF].logouts, c[FRAGILE_YES].logouts) == (1, 1, 1)


def test_attempt_outcomes(result):
    a = {k: (v["status"], v["reason"], v["detail"]) for k, v in result["attempts"].items()}
    assert a[(THROTTLE, 80)] == ("error", "protocol", "console throttles logins: POST /login answered 429 "
                                                      "(Retry-After 300); stopped, nothing retried")
    assert a[(FRAGILE_NO, 80)][:2] == ("skipped", "safe-mode")
    assert a[(HUGE, 80)] == ("not_applicable", "", NOT_A_CONSOLE)
    assert a[(ENDLESS, 80)] == ("not_applicable", "", NOT_A_CONSOLE)
    assert a[(GARBAGE, 80)] == ("not_applicable", "", "password field outside any <form> (JavaScript login): "
                                                      "not tried")
    for host in (HUGE, ENDLESS, GARBAGE):
        assert result["attempts"][(host, 80)]["duration"] < 10


def test_no_secret_reaches_the_database(result):
    dump = Path(result["db"]).read_bytes()
    secrets = [s for c in result["consoles"].values() for s in c.issued]   # CSRF tokens, session cookies
    assert secrets and not [s for s in secrets if s.encode() in dump]
    assert b"password=admin" not in dump and b"username=admin" not in dump
    # the observation carries field NAMES and the list entry id, never a value that was sent
    assert {frozenset(o["data"]) for o in result["obs"] if o["check_id"] == "creds.default"} == {frozenset({
        "service", "accepted", "user", "entry", "tried", "detail", "decision", "form", "page"})}


def test_family_entries_come_first_and_only_when_the_page_matches():
    entries = yaml.safe_load(Path("baselines/knowledge/default_credentials.yaml").read_text())["services"][
        "http-form"]
    ids = [e["id"] for e in forms.choose(entries, "APC | Network Management Card Apache", 3)]
    assert ids == ["form-apc-apc", "form-admin-admin", "form-admin-empty"]
    assert [e["id"] for e in forms.choose(entries, "Ward Gateway", 3)] == [
        "form-admin-admin", "form-admin-empty", "form-admin-password"]
    assert all(e.get("source") for e in entries)


HTML_BITS = st.sampled_from(["<form", "<form action='/l' method=POST>", "</form>", "<input type=password name=p>",
                             "<input name=u>", "<input type=hidden name=t value='&amp;x'>", "<select name=s>",
                             "<option selected value=1>", "<textarea name=x>", "<!--", "<script>", "</script>",
                             "<meta http-equiv=refresh content='0;url=/x'>", "<a href=/logout>", "<![CDATA[",
                             "<title>", "\x00", "&#", "<button name=b>", "'", '"', ">", "<"])


@given(st.lists(st.one_of(HTML_BITS, st.text(max_size=30)), max_size=60), st.binary(max_size=2000))
@settings(max_examples=300, deadline=500)
def test_page_parser_never_raises_on_garbage(bits, raw):
    for body in ("".join(bits).encode(), raw):
        page = forms.parse_page(body, "text/html; charset=gb2312")
        assert len(page.forms) <= forms.MAX_FORMS and len(page.title) <= 120
        form = forms.login_form(page)
        if form is not None:
            sent = forms.submission(form, "u", "p")
            assert (form.passwords[0].name, "p") in sent or not form.passwords[0].name
            assert set(forms.form_facts(form, "/l")) == {"action", "method", "user_field", "password_field",
                                                         "hidden"}


@given(st.lists(st.text(max_size=200), max_size=40))
@settings(max_examples=200, deadline=300)
def test_cookie_parser_never_raises(values):
    jar = web.parse_set_cookies(values)
    header = web.cookie_header(jar)
    assert len(jar) <= web.MAX_COOKIES and "\r" not in header and "\n" not in header


def test_parser_known_values():
    page = forms.parse_page(b"<form action=/s><input name=q></form><FORM ACTION='login.cgi' METHOD=Post>"
                            b"<input type=hidden name=tok value='a&amp;b'><input name=lang value=en>"
                            b"<input name=user_id><INPUT TYPE=PASSWORD NAME=pw><input type=checkbox name=keep checked>"
                            b"<input type=submit name=go value=OK><input type=submit name=cancel value=No></FORM>")
    form = forms.login_form(page)
    assert (form.action, form.method, forms.user_field(form).name) == ("login.cgi", "post", "user_id")
    assert forms.submission(form, "admin", "secret") == [("tok", "a&b"), ("lang", "en"), ("user_id", "admin"),
                                                         ("pw", "secret"), ("keep", "on"), ("go", "OK")]
    # a change-password form (two password inputs) is never a login form
    assert forms.login_form(forms.parse_page(b"<form><input type=password name=a><input type=password name=b>"
                                             b"</form>")) is None
    origin = web.Origin("127.66.1.1", 8080, False, ("console",))
    assert origin.path_of("http://console:8080/a?b=1") == "/a?b=1"
    assert origin.path_of("https://127.66.1.1:8080/") is None and origin.path_of("http://evil:8080/") is None
    assert origin.path_of("http://127.66.1.1/") is None          # another port is another service


def _trickle(c, stop):
    for ch in b"HTTP/1.1 200 OK\r\nServer: slow\r\n\r\n":
        if stop.wait(1.0):
            return
        c.sendall(bytes([ch]))


def test_a_console_that_trickles_ends_within_the_attempt_budget():
    address = "127.66.0.20"
    server = ScriptedServer(address, 80, _trickle, read_first=True)
    try:
        asset = Asset(address=address, services=[Service(port=80, name="http")])
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="creds.default",
                           env=RunEnv(scope=["127.66.0.0/24"]), timeout=3.0, safe_mode=False)
        t0 = time.monotonic()
        with pytest.raises(CheckError) as e:
            default.run(ctx)
        assert time.monotonic() - t0 < 3.5
        assert (e.value.reason, e.value.detail) == ("timeout", "no complete HTTP response header within 3 s")
    finally:
        server.close()


@pytest.mark.parametrize("success,accepted,decision", [
    ("page", True, "POST /login answered 200 without a password field or error text, session cookie set: "
                   "accepted; no logout link found"),
    ("page-no-cookie", False, "POST /login answered 200 without a password field but set no session cookie: "
                              "not counted as accepted (conservative) | POST /login answered 200 with the login "
                              "form again and the text 'Invalid': refused"),
])
def test_a_login_answered_with_a_page_needs_a_new_session_cookie(success, accepted, decision):
    address = "127.66.0.21" if success == "page" else "127.66.0.22"
    console = d.FormConsole(address, 80, accept={("admin", "admin")}, success=success)
    try:
        asset = Asset(address=address, services=[Service(port=80, name="http")])
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="creds.default",
                           env=RunEnv(scope=["127.66.0.0/24"]), timeout=20.0, safe_mode=False)
        [obs] = default.run(ctx)
        assert (obs.data["accepted"], obs.data["decision"]) == (accepted, decision)
        # not counted: the remaining pairs were tried (each once), as for any refusal
        assert obs.data["tried"] == (1 if accepted else 3)
    finally:
        console.close()
