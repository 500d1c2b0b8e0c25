"""snmp.v3 and crypto.cleartext.snmp-v3-noauth against real net-snmp agents on 127.16.0.50 (the RFC 3414
"initial" user at noAuthNoPriv) and 127.16.0.51 (the same user, authPriv only: must stay silent); our facts equal
snmpwalk -v3's for every user name of the list. Also bad UDP peers and hypothesis over the message decoder.

Not through the CLI: discovery does not scan UDP on loopback addresses, so the attempts run through the runner
and the default profile judges them, as a scan would."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.snmp import _v3 as v3
from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.checks.snmp_daemons import start_snmpd
from tests.fuzz import bounded, fuzz, mutated
from tests.loopback import stop_process

OPEN, STRICT = "127.16.0.50", "127.16.0.51"
USERS = {
    OPEN: 'createUser initial\nrouser initial noauth\n',
    STRICT: 'createUser initial SHA "s3cure-pass-16" AES "s3cure-pass-16"\nrouser initial priv\n',
}


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    if not shutil.which("snmpd") or not shutil.which("snmpwalk"):
        pytest.skip("needs snmpd and snmp (Debian packages)")
    procs = []
    try:
        for address, users in USERS.items():
            tmp = tmp_path_factory.mktemp("snmpv3")
            procs.append(start_snmpd(tmp, address, users))
        yield
    finally:
        for p in procs:
            stop_process(p)


@pytest.fixture(scope="module")
def v3_scan(agents):
    assets, attempts, obs = [], [], []
    for address in USERS:
        asset = Asset(address, cls="network-device", zone="management",
                      services=[Service(161, proto="udp", name="snmp")])
        r = execute_attempt(AttemptSpec("t", "snmp.v3", asset.to_dict(), 161, proto="udp", timeout=30),
                            RunEnv(scope=["127.16.0.0/24"]))
        assert r.status == "completed", r.detail
        assets.append(asset)
        attempts.append({"check_id": "snmp.v3", "address": address, "port": 161, "status": r.status,
                         "reason": r.reason, "detail": r.detail})
        obs += r.observations
    findings, _ = evaluate_scan(load_profile(DEFAULT_PROFILE), assets, attempts, obs, vantage="user",
                                now="2026-12-01T00:00:00+00:00")
    return [(f.address, f.rule_id, f.port, f.severity) for f in findings], {o.address: o.data for o in obs}


def test_findings_exact(v3_scan):
    found, obs = v3_scan
    assert set(found) == {(OPEN, "crypto.cleartext.snmp-v3-noauth", 161, "high")}


def test_observations(v3_scan):
    _, obs = v3_scan
    tried = list(knowledge()["snmp_v3_users"]["users"])
    for address, noauth, auth, descr in ((OPEN, ["initial"], [], "Test switch fw V1.2.3"),
                                         (STRICT, [], ["initial"], "")):
        d = dict(obs[address])
        assert len(d.pop("engine_id")) == 34 and d.pop("boots") >= 1   # net-snmp: 17-byte engine id from its MAC
        assert d == {"enterprise": 8072, "tried": tried, "noauth_users": noauth, "auth_users": auth,
                     "sys_descr": descr}


def test_facts_equal_snmpwalk(v3_scan):
    """Per user name: snmpwalk -v3 -l noAuthNoPriv succeeds <=> we list it in noauth_users; it reports an
    authorizationError <=> auth_users; 'Unknown user name' <=> neither. The engine ID equals snmpEngineID.0 as
    the noAuthNoPriv user reads it."""
    _, obs = v3_scan
    for address in USERS:
        for user in obs[address]["tried"]:
            p = subprocess.run(["snmpwalk", "-v3", "-l", "noAuthNoPriv", "-u", user, "-r", "1", "-t", "2", address,
                                "1.3.6.1.2.1.1.1.0"], capture_output=True, text=True, timeout=30)
            out = p.stdout + p.stderr
            theirs = ("noauth" if "STRING:" in out else "auth" if "authorizationError" in out
                      else "unknown" if "Unknown user name" in out else out)
            ours = ("noauth" if user in obs[address]["noauth_users"] else "auth" if user in obs[address]["auth_users"]
                    else "unknown")
            assert ours == theirs, (address, user)
    eid = subprocess.run(["snmpget", "-v3", "-l", "noAuthNoPriv", "-u", "initial", "-Ovq", "-Ox", OPEN,
                          "1.3.6.1.6.3.10.2.1.1.0"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "".join(c for c in eid.lower() if c in "0123456789abcdef") == obs[OPEN]["engine_id"]


# ------------------------------------------------------------------------------------------------ bad peers

def test_bad_peers():
    """A silent port is not SNMPv3 (not applicable: v1/v2c agents ignore v3); garbage is a protocol error."""
    def run(address: str, answer):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((address, 161))
        s.settimeout(0.2)
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    data, peer = s.recvfrom(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if answer:
                    s.sendto(answer, peer)
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            asset = Asset(address, cls="network-device", services=[Service(161, proto="udp", name="snmp")])
            start = time.monotonic()
            r = execute_attempt(AttemptSpec("t", "snmp.v3", asset.to_dict(), 161, proto="udp", timeout=30),
                                RunEnv(scope=[f"{address}/32"]))
            return r, time.monotonic() - start
        finally:
            stop.set()
            t.join(2)
            s.close()

    r, took = run("127.16.5.10", None)
    assert (r.status, r.detail, took < 6) == (
        "not_applicable", "no answer to SNMPv3 engine discovery (v1/v2c only, or not SNMP)", True)
    r, took = run("127.16.5.11", b"\x30\x03\x02\x01\x03")
    assert (r.status, r.reason, took < 6) == ("error", "protocol", True)
    assert r.detail.startswith("no readable SNMPv3 answer: unreadable SNMPv3 message:")


@fuzz
@given(st.one_of(st.binary(max_size=300), mutated(st.sampled_from((v3.discovery(7, 7),
                                                                    v3.get(8, 8, "initial", b"\x80\x00\x1f\x88\x80"
                                                                           + b"\x01" * 12, 1, 2))))))
def test_decoder(data: bytes) -> None:
    a = bounded(v3.decode, data, allowed=(v3.SnmpV3Error,))
    assert a is None or len(a.engine_id) <= 64
