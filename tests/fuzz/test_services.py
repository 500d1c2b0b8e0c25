"""services.*: Redis, memcached, MySQL/MariaDB, PostgreSQL and MongoDB greetings and replies, and the telnet
stream of creds.default: a value or WireError, never anything else."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.creds._logins import strip_iac
from checks.services import _wire as w
from checks.services import ftp_anonymous
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError
from tests.fuzz import bounded, fuzz, mutated
from tests.loopback import Scripted

INFO = b"# Server\r\nredis_version:7.0.11\r\n"
REDIS = st.sampled_from((b"+PONG\r\n", b"-NOAUTH Authentication required.\r\n", b":42\r\n", b"$-1\r\n",
                         b"$%d\r\n%s\r\n" % (len(INFO), INFO)))
MYSQL_ERR = b"\xff\x6a\x04Host '1.2.3.4' is not allowed"
MYSQL = st.sampled_from((
    bytes.fromhex("4a0000000a382e302e333500080000002a6b5c1f3d2b63410"
                  "0ffff ff0200ffdf15000000000000000000001e5c0d3c2b78215d55573b1600"
                  "63616368696e675f736861325f70617373776f726400".replace(" ", "")),
    len(MYSQL_ERR).to_bytes(3, "little") + b"\x00" + MYSQL_ERR,
))
PG = st.sampled_from((
    b"R\x00\x00\x00\x08\x00\x00\x00\x05\x00\x00\x00\x00",
    b"R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x19server_version\x0016.1\x00Z\x00\x00\x00\x05I",
    b"E\x00\x00\x00\x28SFATAL\x00C28000\x00Mno pg_hba.conf entry\x00\x00",
))
# SQL Server 2019's PRELOGIN answer (the shape nmap-service-probes matches), ENCRYPT_NOT_SUP / ENCRYPT_REQ
TDS = st.sampled_from(tuple(bytes.fromhex("0401002500000100000015000601001b000102001c000103001d0000ff0f0007d00005")
                            + bytes([e]) + b"\x00" for e in (0x00, 0x02, 0x03, 0x81)))
MONGO_DOC = {"ok": 1, "ismaster": True, "version": "6.0.5", "nested": {"a": 1, "b": "x"}}


def _mongo_reply(doc: dict) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + w.bson_encode(doc)
    return struct.pack("<iiii", 16 + len(body), 1, 1, 2013) + body


PARSERS = {
    "resp": (w.parse_resp, REDIS),
    "resp_complete": (w.resp_complete, REDIS),
    "memcached": (w.parse_memcached_version, st.just(b"VERSION 1.6.18\r\n")),
    "mysql": (w.parse_mysql_greeting, MYSQL),
    "mysql_complete": (w.mysql_packet_complete, MYSQL),
    "pg_messages": (w.pg_messages, PG),
    "pg_done": (w.pg_reply_done, PG),
    "pg": (w.parse_pg_reply, PG),
    "pg_ssl": (w.parse_pg_ssl_answer, st.sampled_from((b"S", b"N"))),
    "bson": (w.bson_decode, st.just(w.bson_encode(MONGO_DOC))),
    "mongo_complete": (w.mongo_complete, st.just(_mongo_reply(MONGO_DOC))),
    "mongo": (w.parse_mongo_reply, st.just(_mongo_reply(MONGO_DOC))),
    "tds_prelogin": (w.parse_tds_prelogin, TDS),
    "tds_complete": (w.tds_packet_complete, TDS),
    "telnet": (strip_iac, st.just(b"\xff\xfd\x18\xff\xfb\x01\xff\xfa\x18\x01\xff\xf0login: \xff\xff")),
}


@fuzz
@given(st.sampled_from(sorted(PARSERS)), st.data())
def test_service_parsers(which: str, data: st.DataObject) -> None:
    fn, valid = PARSERS[which]
    sent = data.draw(st.one_of(st.binary(max_size=3000), mutated(valid)))
    bounded(fn, sent, allowed=(w.WireError,))


@fuzz
@given(st.text(max_size=2000))
def test_redis_info_and_mariadb_version(text: str) -> None:
    assert isinstance(bounded(w.info_fields, text), dict)
    kind, _ = bounded(w.mariadb_version, text)
    assert kind in ("mariadb", "mysql")


def _ftp(reply: bytes):
    def talk(conn: socket.socket, _n: int, _first: bytes) -> None:
        conn.sendall(b"220 ready\r\n")
        if conn.recv(1024):
            conn.sendall(reply)
        conn.recv(1024)
    return talk


@pytest.mark.parametrize("reply,expected", [
    # "5\u00b2\u00b2": ftplib takes it for a 5xx refusal, and isdigit() took "\u00b2" for a digit int() refuses
    ("5\u00b2\u00b2 no\r\n".encode(), {"accepted": False, "code": None, "reply": "5\u00b2\u00b2 no"}),
    (b"530 \xff\xfe\r\n", "FTP login exchange failed: 'utf-8' codec can't decode byte 0xff in position 4: "
                          "invalid start byte"),
])
def test_ftp_login_replies_a_parser_once_crashed_on(reply: bytes, expected) -> None:
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    with Scripted(_ftp(reply), address, timeout=5) as server:
        asset = Asset(address=address, services=[Service(port=server.port, name="ftp")])
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="services.ftp-anonymous",
                           env=RunEnv(scope=[f"{address}/32"]), timeout=10.0, safe_mode=False)
        if isinstance(expected, str):
            with pytest.raises(CheckError) as e:
                ftp_anonymous.run(ctx)
            assert (e.value.reason, e.value.detail) == ("protocol", expected)
        else:
            [obs] = ftp_anonymous.run(ctx)
            assert {k: obs.data[k] for k in expected} == expected
