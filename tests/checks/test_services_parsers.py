"""Parsers of network input used by services.*, creds.default: exact values on real-shaped input, and
hypothesis: garbage never crashes (only the module's own error), in bounded time."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.creds._logins import strip_iac
from checks.services import _wire as wire
from scanner.core.knowledge import knowledge
from scanner.sdk import versions

GARBAGE = settings(max_examples=300, deadline=300)


def test_resp_and_info():
    assert wire.parse_resp(b"+PONG\r\n") == ("ok", "PONG")
    assert wire.parse_resp(b"-NOAUTH Authentication required.\r\n") == ("error", "NOAUTH Authentication required.")
    body = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
    buf = b"$%d\r\n%s\r\n" % (len(body), body)
    assert wire.resp_complete(buf) and not wire.resp_complete(buf[:20])
    kind, text = wire.parse_resp(buf)
    assert kind == "bulk" and wire.info_fields(text) == {"redis_version": "7.0.15", "redis_mode": "standalone"}


def test_mysql_greeting_mariadb():
    # MariaDB 10.11 greeting as sent by Debian bookworm's mariadb-server (auth data replaced by 'A's)
    payload = (b"\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00" + struct.pack("<I", 31) + b"A" * 8 + b"\x00"
               + struct.pack("<H", 0xF7FE) + b"\x2d" + struct.pack("<H", 2) + struct.pack("<H", 0x81BF)
               + b"\x15" + b"\x00" * 6 + struct.pack("<I", 0x1D) + b"B" * 12 + b"\x00"
               + b"mysql_native_password\x00")
    g = wire.parse_mysql_greeting(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
    assert g == {"kind": "handshake", "version": "5.5.5-10.11.6-MariaDB-0+deb12u1",
                 "auth_plugin": "mysql_native_password", "ssl": False}
    tls = payload.replace(struct.pack("<H", 0xF7FE), struct.pack("<H", 0xF7FE | 0x0800), 1)
    assert wire.parse_mysql_greeting(struct.pack("<I", len(tls))[:3] + b"\x00" + tls)["ssl"] is True
    assert wire.mariadb_version(g["version"]) == ("mariadb", "10.11.6-MariaDB-0+deb12u1")


def test_mysql_error_greeting():
    payload = b"\xff" + struct.pack("<H", 1130) + b"Host '10.77.0.1' is not allowed to connect"
    g = wire.parse_mysql_greeting(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
    assert (g["kind"], g["error_code"]) == ("error", 1130)


def test_pg_reply():
    auth_md5 = b"R" + struct.pack("!II", 12, 5) + b"salt"
    assert wire.parse_pg_reply(auth_md5)["auth"] == "md5"
    ok = (b"R" + struct.pack("!II", 8, 0) + b"S" + struct.pack("!I", 4 + 22) + b"server_version\x0015.18\x00"
          + b"Z" + struct.pack("!I", 5) + b"I")
    r = wire.parse_pg_reply(ok)
    assert (r["auth"], r["server_version"]) == ("ok", "15.18")


def test_bson_roundtrip():
    doc = {"listDatabases": 1, "nameOnly": True, "$db": "admin", "sub": {"x": "y"}}
    assert wire.bson_decode(wire.bson_encode(doc)) == doc


def test_telnet_iac_refuses_everything():
    text, replies = strip_iac(b"\xff\xfd\x18\xff\xfb\x01Debian login: \xff\xfa\x18\x01\xff\xf0")
    assert text == b"Debian login: "
    assert replies == b"\xff\xfc\x18\xff\xfe\x01"


def test_version_ordering_and_dpkg():
    assert versions.upstream_lt("8.5", "8.5p1") and versions.upstream_lt("9.2p1", "9.8p1")
    assert versions.upstream_lt("1.3.5", "1.3.5a") and not versions.upstream_lt("7.0.15", "7.0.12")
    assert versions.dpkg_cmp("1:9.2p1-2+deb12u7", "1:9.2p1-2+deb12u3") == 1
    assert versions.dpkg_cmp("1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u3") == -1
    assert versions.dpkg_cmp("1.0~rc1-1", "1.0-1") == -1
    assert versions.parse_banner_version("9.2p1 Debian 2+deb12u7") == ("9.2p1", "2+deb12u7", "debian12")


@pytest.mark.parametrize(("product", "version", "cves", "suppressed"), [
    ("OpenSSH", "9.2p1 Debian 2+deb12u7", [], ["CVE-2024-6387"]),        # Debian backported the fix
    ("OpenSSH", "9.2p1 Debian 2+deb12u2", ["CVE-2024-6387"], []),        # older than the fixed revision
    ("OpenSSH", "9.6p1", ["CVE-2024-6387"], []),                          # no distro marker: low confidence
    ("OpenSSH", "9.8p1", [], []),
    ("vsftpd", "2.3.4", ["CVE-2011-2523"], []),
    ("vsftpd", "3.0.3", [], []),
    ("Redis key-value store", "7.0.11", ["CVE-2022-24834", "CVE-2025-49844"], []),
    ("Redis key-value store", "7.4.6", [], []),
    ("nginx", "1.22.1", [], []),
    ("DCMTK", "3.6.2", ["CVE-2022-2119", "CVE-2022-2120", "CVE-2022-2121"], []),
])
def test_vulnerable_version_table(product, version, cves, suppressed):
    m = versions.match_vulnerable(knowledge()["vulnerable_versions"], product, version)
    assert sorted(x["cve"] for x in m["matches"]) == cves
    assert [x["cve"] for x in m["suppressed"]] == suppressed
    assert all(x["confidence"] == "low" and "confidence low" in x["note"] for x in m["matches"])


@GARBAGE
@given(st.binary(max_size=300))
def test_service_parsers_garbage(data):
    for fn in (wire.parse_resp, wire.parse_mysql_greeting, wire.parse_pg_reply, wire.parse_mongo_reply,
               wire.bson_decode):
        try:
            fn(data)
        except wire.WireError:
            pass
    wire.parse_memcached_version(data)
    wire.resp_complete(data)
    wire.mysql_packet_complete(data)
    wire.pg_reply_done(data)
    strip_iac(data)


@GARBAGE
@given(st.text(max_size=80), st.text(max_size=80))
def test_version_match_garbage(product, version):
    versions.match_vulnerable(knowledge()["vulnerable_versions"], product, version)
    versions.dpkg_cmp(version, "1:9.2p1-2+deb12u3")
