"""ipmi.rmcp and the IPMI rules against OpenIPMI's ipmi_sim on 127.16.0.40 (anonymous user, every IPMI 1.5
authentication type, factory user ADMIN) and a stricter twin on 127.16.0.41 (MD5 only, one renamed user); our
facts equal nmap's ipmi-version and ipmi-cipher-zero and ipmitool's RAKP answers. Also: bad UDP peers, and
hypothesis over the parsers.

Not through the CLI: discovery does not scan UDP on loopback addresses (scanner/engine/discovery.py), so the
attempts run through the runner (execute_attempt) and the default profile judges them (evaluate_scan), as a
scan would."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.ipmi._rmcp import IpmiError, parse_auth_capabilities, parse_open_session_response
from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.checks.ipmi_servers import IPMI_SIM, start_ipmi_sim
from tests.fuzz import bounded, fuzz, mutated
from tests.loopback import stop_process

WEAK, STRICT = "127.16.0.40", "127.16.0.41"
BMCS = {
    WEAK: ("none md2 md5 straight", '  user 1 true "" "" admin 10 none md2 md5 straight\n'
                                    '  user 2 true "ADMIN" "ADMIN" admin 10 none md2 md5 straight'),
    STRICT: ("md5", '  user 2 true "bmcadmin" "S3cure-Bmc-16" admin 10 md5'),
}


@pytest.fixture(scope="module")
def bmcs(tmp_path_factory):
    if not Path(IPMI_SIM).exists() or not shutil.which("ipmitool"):
        pytest.skip("needs openipmi and ipmitool (Debian packages)")
    tmp = tmp_path_factory.mktemp("ipmi")
    procs = []
    try:
        for address, (auths, users) in BMCS.items():
            procs.append(start_ipmi_sim(tmp, address, 623, auths, users))
        yield
    finally:
        for p in procs:
            stop_process(p)


@pytest.fixture(scope="module")
def ipmi_scan(bmcs):
    assets, attempts, obs = [], [], []
    for address in BMCS:
        asset = Asset(address, cls="server", zone="management", services=[Service(623, proto="udp",
                                                                                   name="asf-rmcp")])
        r = execute_attempt(AttemptSpec("t", "ipmi.rmcp", asset.to_dict(), 623, proto="udp", timeout=20),
                            RunEnv(scope=["127.16.0.0/24"]))
        assert r.status == "completed", r.detail
        assets.append(asset)
        attempts.append({"check_id": "ipmi.rmcp", "address": address, "port": 623, "status": r.status,
                         "reason": r.reason, "detail": r.detail})
        obs += r.observations
    findings, _ = evaluate_scan(load_profile(DEFAULT_PROFILE), assets, attempts, obs, vantage="user",
                                now="2026-12-01T00:00:00+00:00")
    found = [{"address": f.address, "rule_id": f.rule_id, "port": f.port, "severity": f.severity}
             for f in findings]
    return found, {o.address: o.data for o in obs}


def test_findings_exact(ipmi_scan):
    found, _ = ipmi_scan
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        (WEAK, "hardening.ipmi-cipher-zero", 623, "critical"),
        (WEAK, "accounts.ipmi-anonymous-login", 623, "high"),
        (WEAK, "crypto.ipmi-weak-auth", 623, "medium"),
        (WEAK, "accounts.ipmi-rakp-hash", 623, "high"),           # user ADMIN answers RAKP Message 1
        # ipmi_sim opens an RMCP+ session with cipher suite 0 whatever its configuration (nmap agrees below):
        # the stricter twin is silent on the IPMI 1.5 rules only
        (STRICT, "hardening.ipmi-cipher-zero", 623, "critical"),
    }


def test_observations(ipmi_scan):
    _, obs = ipmi_scan
    common = {"ipmi_versions": ["1.5", "2.0"], "null_usernames": False, "non_null_usernames": True,
              "user_level_auth": True, "per_message_auth": True, "oem_id": 0, "cipher_zero": True,
              "cipher_zero_status": "accepted", "rakp_tried": list(knowledge()["ipmi_users"]["users"])}
    assert obs[WEAK] == {**common, "auth_types": ["none", "md2", "md5", "password"], "anonymous_login": True,
                         "rakp_hash_users": ["ADMIN"]}
    assert obs[STRICT] == {**common, "auth_types": ["md5"], "anonymous_login": False, "rakp_hash_users": []}


def test_rakp_users_equal_ipmitool(ipmi_scan):
    """ipmitool (lanplus, cipher suite 3) logging in with a wrong password: "RAKP 2 HMAC is invalid" when the BMC
    knew the name and sent its RAKP Message 2, "unauthorized name" when it did not; the names of the first kind
    equal our rakp_hash_users."""
    _, obs = ipmi_scan
    for address in BMCS:
        known = []
        for user in obs[address]["rakp_tried"]:
            p = subprocess.run(["ipmitool", "-v", "-I", "lanplus", "-C", "3", "-N", "2", "-R", "1", "-H", address,
                                "-U", user, "-P", "not-the-password", "chassis", "status"],
                               capture_output=True, text=True, timeout=60)
            out = (p.stdout + p.stderr).lower()
            assert "rakp 2 hmac is invalid" in out or "unauthorized name" in out, out
            if "rakp 2 hmac is invalid" in out:
                known.append(user)
        assert known == obs[address]["rakp_hash_users"], address


def _nmap(address: str) -> dict:
    out = subprocess.run(["nmap", "-sU", "-Pn", "-n", "-p", "623", "--script", "ipmi-version,ipmi-cipher-zero",
                          "-oX", "-", address], capture_output=True, text=True, timeout=120, check=True).stdout
    root = ET.fromstring(out)
    version = root.find(".//script[@id='ipmi-version']")
    zero = root.find(".//script[@id='ipmi-cipher-zero']")
    assert version is not None, out
    text = version.get("output")

    def listed(label: str) -> set[str]:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(label))
        return {w.strip() for w in line.split(":", 1)[1].split(",") if w.strip()}

    return {"user_auth": listed("UserAuth"), "pass_auth": listed("PassAuth"), "level": listed("Level"),
            "cipher_zero": zero is not None and "VULNERABLE" in (zero.get("output") or "")}


def test_facts_equal_nmap(ipmi_scan):
    """nmap 7.93 ipmi-version names: UserAuth password/md5/md2/null = our auth types password/md5/md2/none;
    PassAuth auth_msg/auth_user/non_null_user/null_user/anonymous_user = our per_message_auth, user_level_auth,
    non_null_usernames, null_usernames, anonymous_login; Level = our ipmi_versions. ipmi-cipher-zero's
    VULNERABLE = our cipher_zero."""
    _, obs = ipmi_scan
    names = {"none": "null", "md2": "md2", "md5": "md5", "password": "password"}
    for address in BMCS:
        theirs, ours = _nmap(address), obs[address]
        flags = {"auth_msg": ours["per_message_auth"], "auth_user": ours["user_level_auth"],
                 "non_null_user": ours["non_null_usernames"], "null_user": ours["null_usernames"],
                 "anonymous_user": ours["anonymous_login"]}
        assert theirs == {"user_auth": {names[t] for t in ours["auth_types"]},
                          "pass_auth": {k for k, v in flags.items() if v},
                          "level": set(ours["ipmi_versions"]), "cipher_zero": ours["cipher_zero"]}, address


# ------------------------------------------------------------------------------------------------ bad peers

def _udp_peer(address: str, answer) -> tuple[socket.socket, threading.Thread]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, 623))
    s.settimeout(0.2)

    def serve():
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                data, peer = s.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = answer(data)
            if reply:
                s.sendto(reply, peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s, t


def _attempt(address: str):
    asset = Asset(address, cls="server", services=[Service(623, proto="udp", name="asf-rmcp")])
    start = time.monotonic()
    r = execute_attempt(AttemptSpec("t", "ipmi.rmcp", asset.to_dict(), 623, proto="udp", timeout=20),
                        RunEnv(scope=[f"{address}/32"]))
    return r, time.monotonic() - start


def test_bad_peers():
    cases = {
        "silent": (lambda d: None, "error", "timeout", "no IPMI answer from 127.16.4.10:623/udp in 2 tries"),
        "noise": (lambda d: b"\x06\x00\xff\x07" + b"\x00" * 3, "not_applicable", "",
                  "not IPMI: not an RMCP IPMI answer: 0600ff07000000"),
        "refuses": (lambda d: b"\x06\x00\xff\x07\x00" + b"\x00" * 8 + bytes([16]) +
                    bytes([0x81, 0x1C, 0x63, 0x20, 0x04, 0x38, 0xCC]) + b"\x00" * 9, "error", "protocol",
                    "Get Channel Authentication Capabilities refused (completion code 0xcc)"),
    }
    for i, (name, (answer, status, reason, detail)) in enumerate(cases.items()):
        address = f"127.16.4.{10 + i}"
        s, t = _udp_peer(address, answer)
        try:
            r, took = _attempt(address)
        finally:
            s.close()
            t.join(2)
        assert (r.status, r.reason, r.detail) == (status, reason, detail.replace("127.16.4.10", address)), name
        assert took < 6, (name, took)


# ------------------------------------------------------------------------------------------------ hypothesis

CAPS = (b"\x06\x00\xff\x07\x00" + b"\x00" * 8 + bytes([16])
        + bytes([0x81, 0x1C, 0x63, 0x20, 0x04, 0x38, 0x00, 0x01, 0x97, 0x05, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00]))
OPEN = (b"\x06\x00\xff\x07\x06\x11" + b"\x00" * 8 + struct.pack("<H", 36)
        + struct.pack("<BBHII", 0, 0, 0, 7, 0x1234) + b"\x00" * 24)


@fuzz
@given(st.one_of(st.binary(max_size=80), mutated(st.just(CAPS))))
def test_auth_capabilities_parser(data: bytes) -> None:
    caps = bounded(parse_auth_capabilities, data, allowed=(IpmiError,))
    assert caps is None or set(caps.auth_types) <= {"none", "md2", "md5", "password", "oem"}


@fuzz
@given(st.one_of(st.binary(max_size=80), mutated(st.just(OPEN))))
def test_open_session_parser(data: bytes) -> None:
    status = bounded(parse_open_session_response, data, 7, allowed=(IpmiError,))
    assert status is None or isinstance(status, str)


RAKP2 = (b"\x06\x00\xff\x07\x06\x13" + b"\x00" * 8 + struct.pack("<H", 60)
         + struct.pack("<BBHI", 0, 0, 0, 7) + b"\x01" * 32 + b"\x02" * 20)


@fuzz
@given(st.one_of(st.binary(max_size=90), mutated(st.just(RAKP2))))
def test_rakp2_parser(data: bytes) -> None:
    from checks.ipmi._rmcp import parse_rakp2
    got = bounded(parse_rakp2, data, 7, allowed=(IpmiError,))
    assert got is None or got[1] >= 0
