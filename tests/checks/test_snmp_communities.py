"""snmp.communities against a real net-snmp agent on loopback (public read-only, private read-write), and the
SNMP parser on garbage.

Discovery does not sweep UDP on loopback (nmap -sU runs only on real interfaces), so these tests hand the
check an asset whose 161-like port is declared, and run it through the same CheckContext the runner uses.
The lab test (test_services_lab.py) covers the CLI path with nmap's UDP discovery.
"""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.snmp import _wire as wire
from checks.snmp import communities
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError
from tests.checks import services_daemons as d

HOST, PORT = "127.0.5.21", 16161


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    procs = d.Procs()
    try:
        d.snmpd(procs, tmp_path_factory.mktemp("snmp"), HOST, PORT)
        yield HOST
    finally:
        procs.stop()


def _ctx(host: str, port: int, safe: bool) -> CheckContext:
    asset = Asset(address=host, cls="network-device", fragile=safe,
                  services=[Service(port=port, proto="udp", name="snmp")])
    return CheckContext(asset=asset, service=asset.services[0], check_id="snmp.communities",
                        env=RunEnv(scope=["127.0.5.0/24"]), timeout=30, safe_mode=safe)


def _location(host: str) -> bytes:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(wire.encode_get("v2c", "public", 77, [wire.SYS_LOCATION]), (host, PORT))
    value = wire.decode(s.recvfrom(4096)[0]).varbinds[0][1]
    s.close()
    return value


def test_public_ro_private_rw_without_changing_anything(agent):
    before = _location(agent)
    start = time.monotonic()
    [obs] = communities.run(_ctx(agent, PORT, safe=False))
    took = time.monotonic() - start
    data = obs.data
    assert obs.key == "snmp" and obs.port == PORT
    assert data["versions"] == ["v1", "v2c"]
    assert [(c["name"], c["entry"], c["versions"], c["access"]) for c in data["communities"]] == [
        ("private", "snmp-private", ["v1", "v2c"], "rw"),
        ("public", "snmp-public", ["v1", "v2c"], "ro"),
    ]
    assert {c["name"]: c["set_answer"] for c in data["communities"]} == {"private": "v2c notWritable",
                                                                          "public": "v2c noAccess"}
    assert data["sys_descr"] == "Test switch fw V1.2.3"
    assert data["sys_name"] == "test-switch"
    assert data["sys_object_id"] == "1.3.6.1.4.1.8072.3.2.10"      # net-snmp on Linux
    assert data["tried"] == 12
    assert _location(agent) == before == b"rack-A1"                 # the same-value SET changed nothing
    assert took < 8


def test_safe_mode_reads_only(agent):
    [obs] = communities.run(_ctx(agent, PORT, safe=True))
    assert [(c["name"], c["access"]) for c in obs.data["communities"]] == [("private", "unknown"),
                                                                          ("public", "unknown")]
    assert obs.data["write_test"].startswith("skipped: safe mode")


def test_nothing_listening_is_not_a_pass():
    # ICMP port unreachable from loopback: the check cannot assess, it does not report "no community"
    with pytest.raises(CheckError) as e:
        communities.run(_ctx("127.0.5.22", 16162, safe=False))
    assert e.value.reason == "connectivity"


def test_classify_set():
    assert wire.classify_set("v2c", 0) == "rw"
    assert wire.classify_set("v2c", 17) == "rw"       # notWritable comes after the access check
    assert wire.classify_set("v2c", 6) == "ro"
    assert wire.classify_set("v2c", 16) == "ro"
    assert wire.classify_set("v1", 2) == "unknown"    # noSuchName: both kinds on net-snmp
    assert wire.classify_set("v1", 4) == "ro"


def test_roundtrip_response():
    from scapy.asn1.asn1 import ASN1_STRING
    from scapy.layers.snmp import SNMP, SNMPresponse, SNMPvarbind
    raw = bytes(SNMP(version=1, community=b"public", PDU=SNMPresponse(
        id=42, varbindlist=[SNMPvarbind(oid="1.3.6.1.2.1.1.1.0", value=ASN1_STRING(b"fw 1.0"))])))
    r = wire.decode(raw)
    assert (r.version, r.community, r.request_id, r.error_status, r.varbinds) == (
        "v2c", "public", 42, 0, [("1.3.6.1.2.1.1.1.0", b"fw 1.0")])


@settings(max_examples=300, deadline=500)
@given(st.binary(max_size=600))
def test_decode_garbage_never_crashes(data):
    try:
        wire.decode(data)
    except wire.SnmpError:
        pass


@settings(max_examples=200, deadline=500)
@given(st.binary(min_size=1, max_size=60))
def test_decode_mutated_response_never_crashes(noise):
    base = bytearray(wire.encode_get("v2c", "public", 7, [wire.SYS_DESCR]))
    base[13] = 0xA2                     # turn it into a response PDU, then corrupt a slice
    at = noise[0] % len(base)
    mutated = bytes(base[:at]) + noise + bytes(base[at + len(noise):])
    try:
        wire.decode(mutated)
    except wire.SnmpError:
        pass
