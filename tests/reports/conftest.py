"""Real stored scans for the report tests: hostile TCP listeners on a loopback address of their own, scanned
twice through the real CLI (nmap discovery, ports.open, evaluation, SQLite), with a waiver in between.

Scan 1: telnet-like listener on 23 (hostile banner) and an rlogin port 513.
Between:  crypto.cleartext.telnet is waived; 513 closes; an FTP-port listener opens on 21.
Scan 2: 21 and 23 open.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import scan, tcmscan
from tests.loopback import Listener

# HTML/JS, a spreadsheet formula and a bidi override, all in what the host says first.
HOSTILE_BANNER = '=HYPERLINK("http://e.iv")<script>alert(1)</script>\u202e<img src=x onerror=alert(2)>'
# ports.open keeps the first bytes printable (the bidi override becomes \x202e) and the rule keeps 80 chars.
STORED_BANNER = HOSTILE_BANNER.replace("\u202e", "\\x202e")[:80]
HOSTILE_NAME = "=cmd|' /C calc'!A0<script>alert(3)</script>\u202e"
OVERLONG = "A" * 100_000 + "<script>alert(4)</script>"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="session")
def hostile_scans(tmp_path_factory):
    """(db path, address, scan 1 id, scan 2 id)."""
    if os.geteuid() != 0:
        pytest.skip("binding ports 21/23/513 needs root")
    if not shutil.which("nmap"):
        pytest.skip("nmap is not installed")
    d = tmp_path_factory.mktemp("reports")
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    db = d / "t.db"
    inv = d / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": address, "name": HOSTILE_NAME, "role": "HIS", "zone": "server", "owner": OVERLONG}]},
        allow_unicode=True), encoding="utf-8")
    banner = HOSTILE_BANNER.encode() + b"\r\n"
    telnet = Listener(address, 23, banner)
    rlogin = Listener(address, 513, b"")
    try:
        s1, _ = scan([address], scope=[f"{address}/32"], db=db, checks=["ports.open"], inventory=str(inv))
        rlogin.close()
        p = tcmscan("waive", "crypto.cleartext.telnet", "--host", address, "--owner", "信息科 张工<b>",
                    "--reason", "legacy PACS gateway, replacement ordered <script>alert(5)</script>",
                    "--expires", "2099-12-31", db=db, check=True)
        assert p.returncode == 0, p.stderr
        ftp = Listener(address, 21, b"220 =HYPERLINK(\"http://evil.invalid\") ready\r\n")
        try:
            s2, _ = scan([address], scope=[f"{address}/32"], db=db, checks=["ports.open"], inventory=str(inv))
        finally:
            ftp.close()
    finally:
        telnet.close()
        rlogin.close()
    return db, address, s1, s2


@pytest.fixture(scope="session")
def keypair(tmp_path_factory):
    """Ed25519 + SM2 keys made by the real CLI; (key dir, passphrase file)."""
    d = tmp_path_factory.mktemp("keys")
    pp = d / "passphrase"
    pp.write_text(PASSPHRASE + "\n", encoding="utf-8")
    p = tcmscan("keys", "generate", "--out", str(d / "k"), "--sm2", "--passphrase-file", str(pp))
    assert p.returncode == 0, p.stderr
    return d / "k", pp


def copy_db(db: Path, dest: Path) -> Path:
    """A private copy of the session database for a test that changes it."""
    import sqlite3

    target = dest / "copy.db"
    src = sqlite3.connect(str(db))
    dst = sqlite3.connect(str(target))
    src.backup(dst)
    src.close()
    dst.close()
    return target
