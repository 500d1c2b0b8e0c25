"""Nothing a target sends can drive the terminal: ESC sequences (CSI colours and screen clears, OSC 8 links, OSC 52
clipboard writes), the one-byte C1 CSI \\x9b, bare CR and backspace, bidi overrides. A real scan of loopback
servers that put them in their FTP replies and HTTP headers, stored in real SQLite, then every CLI command that
shows it: the output bytes hold none of them, and show a visible escape in their place (scanner.core.output
printable / dumps / csv_cell)."""

from __future__ import annotations

import io
import json
import os
import random
import re
import socket
import subprocess
import sys

import pytest
import yaml

from scanner.core.output import printable
from scanner.engine.progress import Progress, say
from scanner.store import Store
from tests.helpers import ROOT, scan
from tests.loopback import Scripted

# CSI colour, an OSC 8 hyperlink, an OSC 52 clipboard write, the C1 CSI clearing the screen, a bare CR and a
# backspace to overwrite the line, a right-to-left override; sent UTF-8 encoded.
EVIL_TEXT = "\x1b[31mRED\x1b]8;;http://e.iv/\x07L\x1b]8;;\x07\x1b]52;c;ZXZpbA==\x07\x9b2J\r\x08\u202eLIVE"
EVIL = EVIL_TEXT.encode()
HOSTILE_NAME = "=cmd|' /C calc'!A0\u202e\x1b[2J"
# What must never be in what tcmscan prints: C0 controls but newline and tab-free layout, DEL, C1, bidi controls.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]|\r(?!\n)")


def assert_inert(out: bytes) -> str:
    text = out.decode("utf-8")        # strict: a lone surrogate or raw byte would not decode
    bad = FORBIDDEN.findall(text)
    assert not bad, f"raw control characters reached the output: {bad!r}"
    return text


def run(*args: str, db) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "scanner.cli", "--db", str(db), *args], capture_output=True,
                       cwd=ROOT, timeout=300)
    return p.returncode, assert_inert(p.stdout), assert_inert(p.stderr)


def _ftp(conn: socket.socket, _n: int, _first: bytes) -> None:
    conn.sendall(b"220 " + EVIL + b"\r\n")
    for _ in range(20):
        if not conn.recv(1024):
            return
        conn.sendall(b"530 " + EVIL + b"\r\n")


def _http(conn: socket.socket, _n: int, _first: bytes) -> None:
    body = b"<html><title>hello</title></html>"
    conn.sendall(b"HTTP/1.1 200 OK\r\nServer: " + EVIL + b"\r\nContent-Type: text/html\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(db, scan id, address) of a real scan of an FTP server on 21 and an HTTP server on 80 that send EVIL."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("binding ports 21 and 80 needs root")
        pytest.skip("binding ports 21 and 80 needs root")
    d = tmp_path_factory.mktemp("terminal")
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    servers = [Scripted(_ftp, address, 21, timeout=5), Scripted(_http, address, 80, read_first=4096, timeout=5)]
    try:
        inv = d / "inventory.yaml"
        inv.write_text(yaml.safe_dump({"assets": [{"address": address, "name": HOSTILE_NAME, "zone": "server"}]},
                                      allow_unicode=True), encoding="utf-8")
        db = d / "t.db"
        scan_id, _ = scan([address], scope=[f"{address}/32"], db=db, inventory=str(inv),
                          checks=["ports.open", "services.ftp-anonymous", "http.probe", "tls.scan"], extra=["--no-ping"])
    finally:
        for s in servers:
            s.close()
    yield db, scan_id, address


def test_the_stored_scan_holds_the_raw_bytes(hostile):
    """The store keeps what the peer sent (escaping is the printer's job): the inputs of the tests below."""
    db, scan_id, _ = hostile
    store = Store(db)
    detail = {a["check_id"]: a["detail"] for a in store.attempts(scan_id)}
    assert detail["services.ftp-anonymous"] == "FTP login exchange failed: \x08\u202eLIVE"
    server = next(o.data["server"] for o in store.observations(scan_id) if o.check_id == "http.probe")
    assert server == EVIL.decode("latin-1")
    assert {a.name for a in store.assets(scan_id)} == {HOSTILE_NAME}


def test_attempts_table_shows_escapes(hostile):
    db, scan_id, address = hostile
    rc, out, err = run("attempts", scan_id, db=db)
    assert (rc, err) == (0, "")
    line = next(ln for ln in out.splitlines() if "services.ftp-anonymous" in ln)
    assert line.split(None, 5)[:5] == [address, "21", "services.ftp-anonymous", "error", "protocol"]
    assert "FTP login exchange failed: \\x08\\u202eLIVE  " in line


def test_attempts_json_escapes_and_round_trips(hostile):
    db, scan_id, _ = hostile
    rc, out, err = run("attempts", scan_id, "--format", "json", db=db)
    assert (rc, err) == (0, "")
    assert '"detail": "FTP login exchange failed: \\b\\u202eLIVE"' in out
    rows = {r["check_id"]: r for r in json.loads(out)}
    assert rows["services.ftp-anonymous"]["detail"] == "FTP login exchange failed: \x08\u202eLIVE"


def test_observations_json_escapes_c1_and_bidi(hostile):
    db, scan_id, _ = hostile
    rc, out, err = run("observations", scan_id, "--check", "http", db=db)
    assert (rc, err) == (0, "")
    assert ('"server": "\\u001b[31mRED\\u001b]8;;http://e.iv/\\u0007L\\u001b]8;;\\u0007\\u001b]52;c;ZXZpbA==\\u0007'
            '\u00c2\\u009b2J\\r\\b\u00e2\\u0080\u00aeLIVE"') in out
    assert json.loads(out)[0]["data"]["server"] == EVIL.decode("latin-1")


def test_findings_csv_neutralises_formulas_and_controls(hostile):
    db, scan_id, _ = hostile
    rc, out, err = run("findings", scan_id, "--format", "csv", db=db)
    assert (rc, err) == (0, "")
    rows = out.split("\r\n")
    assert rows[0].startswith('"fingerprint","address","host_name",')
    names = {r.split('","')[2] for r in rows[1:] if r}
    assert names == {"'=cmd|' /C calc'!A0\\u202e\\x1b[2J"}


def test_findings_table_and_json(hostile):
    db, scan_id, address = hostile
    rc, out, err = run("findings", scan_id, db=db)
    assert (rc, err) == (0, "")
    assert any(ln.split()[:4] == ["high", address, "21", "crypto.cleartext.ftp"] for ln in out.splitlines())
    rc, out, err = run("findings", scan_id, "--format", "json", db=db)
    assert (rc, err) == (0, "")
    # the FTP server's refusal of AUTH TLS, quoted as the evidence of crypto.cleartext.no-starttls
    assert ('"reply": "AUTH TLS refused: 530 \\u001b[31mRED\\u001b]8;;http://e.iv/\\u0007L\\u001b]8;;\\u0007'
            '\\u001b]52;c;ZXZpbA==\\u0007\u00c2\\u009b2J\\r\\b\u00e2\\u0080\u00aeLIVE"') in out
    evidence = {f["rule_id"]: f["evidence"] for f in json.loads(out)}
    assert evidence["crypto.cleartext.no-starttls"]["reply"] == "AUTH TLS refused: 530 " + EVIL.decode("latin-1")
    assert evidence["crypto.cleartext.ftp"]["banner"].startswith("220 \\x1b[31mRED\\x1b]8;;http://e.iv/")


def test_error_message_shows_escapes(hostile):
    db, _, _ = hostile
    rc, out, err = run("attempts", "s\x1b]52;c;ZXZpbA==\x07\u202e", db=db)
    assert (rc, out) == (2, "")
    assert err == f"tcmscan: no scan 's\\x1b]52;c;ZXZpbA==\\x07\\u202e' in {db}\n"


def test_progress_line_and_status_line(capsys):
    stream = io.StringIO()
    bar = Progress("checks", 1, stream=stream, enabled=True)
    bar.advance(note="ports.open \x1b]8;;http://e.iv/\x07x\u202e")
    line = stream.getvalue()
    assert line.startswith("\rchecks     [##############################] 1/1 ")
    # cut at 40 characters after escaping: a cut escape is still only printable characters
    assert line.endswith("s ports.open \\x1b]8;;http://e.iv/\\x07x\\u20")
    say("discovery: \x9b2J\r\x08done")
    assert capsys.readouterr().err == "discovery: \\x9b2J\\x0d\\x08done\n"


def test_printable_escapes_exactly_the_unsafe_characters():
    assert printable("a\x1b[0m\x9b\u202e\u2066\x7f\t\n\U000e0041 中文 é") == \
        "a\\x1b[0m\\x9b\\u202e\\u2066\\x7f\\x09\\x0a\\U000e0041 中文 é"
    assert printable("line1\r\nline2\x1b", keep_newlines=True) == "line1\\x0d\nline2\\x1b"
