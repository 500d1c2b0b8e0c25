"""snmp.v3 with an `snmpv3` credential, and crypto.snmp.v3-weak-algorithms, against real net-snmp agents on
127.27.0.61 (user `netops` with MD5 authentication and DES privacy, plus `md5only` with MD5 and no privacy)
and the twin 127.27.0.62 (user `netops` with SHA and AES: must stay silent). Our `accepted` equals snmpget's
success for every (credential, agent) pair, with the same algorithms and keys.

Not through the CLI: discovery does not scan UDP on loopback addresses (as tests/checks/test_snmp_v3.py), so
the attempts run through the runner and the default profile judges them, as a scan would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.snmp import _v3 as v3
from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.errors import UsageError
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from scanner.sdk.credentials import Credential, CredentialStore, load_credentials
from tests.checks.snmp_daemons import start_snmpd
from tests.fuzz import bounded, fuzz, mutated
from tests.loopback import stop_process

WEAK, STRONG = "127.27.0.61", "127.27.0.62"
MD5_DES = {"user": "netops", "auth_protocol": "MD5", "auth_key": "weak-auth-key-27", "priv_protocol": "DES",
           "priv_key": "weak-priv-key-27"}
SHA_AES = {"user": "netops", "auth_protocol": "SHA", "auth_key": "strong-auth-key-27", "priv_protocol": "AES",
           "priv_key": "strong-priv-key-27"}
MD5_ONLY = {"user": "md5only", "auth_protocol": "MD5", "auth_key": "md5-only-key-27"}
CONF = {
    WEAK: f'createUser netops MD5 "{MD5_DES["auth_key"]}" DES "{MD5_DES["priv_key"]}"\n'
          f'createUser md5only MD5 "{MD5_ONLY["auth_key"]}"\nrouser netops priv\nrouser md5only auth\n',
    STRONG: f'createUser netops SHA "{SHA_AES["auth_key"]}" AES "{SHA_AES["priv_key"]}"\nrouser netops priv\n',
}


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    if not shutil.which("snmpd") or not shutil.which("snmpget"):
        pytest.skip("needs snmpd and snmp (Debian packages)")
    procs = []
    try:
        for address, users in CONF.items():
            tmp = tmp_path_factory.mktemp("snmpv3cred")
            procs.append(start_snmpd(tmp, address, users))
        yield
    finally:
        for p in procs:
            stop_process(p)


def credential(address: str, fields: dict) -> Credential:
    f = dict(fields)
    return Credential(match=address, type="snmpv3", user=f.pop("user"), extra=f)


def attempt(address: str, fields: dict | None):
    asset = Asset(address, cls="network-device", zone="management",
                  services=[Service(161, proto="udp", name="snmp")])
    store = CredentialStore([credential(address, fields)] if fields else [])
    r = execute_attempt(AttemptSpec("t", "snmp.v3", asset.to_dict(), 161, proto="udp", timeout=30),
                        RunEnv(scope=[f"{address}/32"], credentials=store))
    assert (r.status, r.detail) == ("completed", ""), r.detail
    return asset, r


def cred_facts(address: str, fields: dict | None) -> dict:
    _, r = attempt(address, fields)
    [o] = [o for o in r.observations if o.key == "snmpv3-credential"]
    assert o.port == 161
    return dict(o.data)


def test_facts_per_credential(agents) -> None:
    assert cred_facts(WEAK, MD5_DES) == {"user": "netops", "auth_protocol": "MD5", "priv_protocol": "DES",
                                         "level": "authPriv", "accepted": True, "answer": "response"}
    assert cred_facts(WEAK, MD5_ONLY) == {"user": "md5only", "auth_protocol": "MD5", "priv_protocol": "",
                                          "level": "authNoPriv", "accepted": True, "answer": "response"}
    assert cred_facts(STRONG, SHA_AES) == {"user": "netops", "auth_protocol": "SHA", "priv_protocol": "AES",
                                           "level": "authPriv", "accepted": True, "answer": "response"}
    # the weak credential against the twin: refused, and the Report says why (the MD5 digest is wrong)
    assert cred_facts(STRONG, MD5_DES) == {"user": "netops", "auth_protocol": "MD5", "priv_protocol": "DES",
                                           "level": "authPriv", "accepted": False, "answer": "wrongDigest"}
    assert cred_facts(STRONG, {**SHA_AES, "user": "nobody"})["answer"] == "unknownUserName"
    assert cred_facts(WEAK, None) == {
        "unavailable": "no snmpv3 credential for this address: the user's algorithms were not tried"}
    # the credential adds facts, it changes none of the noAuthNoPriv survey
    _, r = attempt(WEAK, MD5_DES)
    [o] = [o for o in r.observations if o.key == "snmpv3"]
    assert (o.data["noauth_users"], o.data["sys_descr"]) == ([], "")


def _snmpget(address: str, f: dict) -> bool:
    level = ["-l", "authPriv", "-x", f["priv_protocol"], "-X", f["priv_key"]] if f.get("priv_protocol") else \
        ["-l", "authNoPriv"]
    p = subprocess.run(["snmpget", "-v3", "-u", f["user"], "-a", f["auth_protocol"], "-A", f["auth_key"], *level,
                        "-r", "0", "-t", "2", address, "1.3.6.1.2.1.1.1.0"],
                       capture_output=True, text=True, timeout=20, env={**os.environ, "MIBS": ""})
    return 'STRING: "Test switch fw V1.2.3"' in p.stdout


def test_accepted_equals_snmpget(agents) -> None:
    for address in (WEAK, STRONG):
        for fields in (MD5_DES, SHA_AES, MD5_ONLY):
            assert cred_facts(address, fields)["accepted"] is _snmpget(address, fields), (address, fields["user"],
                                                                                            fields["auth_protocol"])


def test_findings_exact(agents) -> None:
    assets, attempts, obs = [], [], []
    for address, fields in ((WEAK, MD5_DES), (STRONG, SHA_AES)):
        asset, r = attempt(address, fields)
        assets.append(asset)
        attempts.append({"check_id": "snmp.v3", "address": address, "port": 161, "status": r.status,
                         "reason": r.reason, "detail": r.detail})
        obs += r.observations
    findings, results = evaluate_scan(load_profile(DEFAULT_PROFILE), assets, attempts, obs, vantage="user",
                                      now="2026-12-01T00:00:00+00:00")
    assert {(f.address, f.rule_id, f.port, f.severity) for f in findings} == {
        (WEAK, "crypto.snmp.v3-weak-algorithms", 161, "medium")}
    [f] = findings
    assert f.evidence == {"user": "netops", "auth_protocol": "MD5", "priv_protocol": "DES", "level": "authPriv"}
    assert "weak-auth-key-27" not in repr(f.to_dict() if hasattr(f, "to_dict") else f)
    verdicts = {(r.address, r.status) for r in results if r.rule_id == "crypto.snmp.v3-weak-algorithms"}
    assert verdicts == {(WEAK, "failed"), (STRONG, "passed")}
    # without a credential the rule is not assessed, never passed
    asset, r = attempt(WEAK, None)
    _, results = evaluate_scan(load_profile(DEFAULT_PROFILE), [asset], [
        {"check_id": "snmp.v3", "address": WEAK, "port": 161, "status": r.status, "reason": "", "detail": ""}],
        r.observations, vantage="user", now="2026-12-01T00:00:00+00:00")
    [res] = [x for x in results if x.rule_id == "crypto.snmp.v3-weak-algorithms"]
    assert (res.status, res.reason) == ("not_assessed", "unavailable: snmpv3-credential: no snmpv3 credential for "
                                                        "this address: the user's algorithms were not tried")


def _creds_file(tmp_path: Path, entry: dict) -> str:
    f = tmp_path / "credentials.yaml"
    import yaml
    f.write_text(yaml.safe_dump({"credentials": [{"match": "127.27.0.0/24", "type": "snmpv3", **entry}]}))
    f.chmod(0o600)
    return str(f)


def test_credentials_file_snmpv3_entries(tmp_path: Path) -> None:
    store = load_credentials(_creds_file(tmp_path, {**MD5_DES, "auth_protocol": "md5", "priv_protocol": "des"}))
    c = store.find(WEAK, "snmpv3")
    assert c is not None and (c.user, c.extra["auth_protocol"], c.extra["priv_protocol"]) == ("netops", "MD5", "DES")
    assert c.describe() == {"type": "snmpv3", "user": "netops", "method": "usm", "auth_protocol": "MD5",
                            "priv_protocol": "DES"}
    assert "weak-" not in repr(c) and "weak-" not in str(c.describe())
    bad = {
        "auth_protocol": ({**MD5_DES, "auth_protocol": "SHA1-96"}, "snmpv3 auth_protocol must be one of MD5, SHA"),
        "short key": ({**MD5_DES, "auth_key": "short"}, "snmpv3 auth_key missing or shorter than 8 characters"),
        "priv": ({**MD5_DES, "priv_protocol": "3DES"}, "snmpv3 priv_protocol must be one of DES, AES"),
        "short priv": ({**MD5_DES, "priv_key": "x"}, "snmpv3 priv_key missing or shorter than 8 characters"),
        "orphan priv key": ({**MD5_ONLY, "priv_key": "some-priv-key"}, "snmpv3 priv_key without priv_protocol"),
        "no user": ({k: v for k, v in MD5_DES.items() if k != "user"}, "an snmpv3 credential needs 'user'"),
    }
    for name, (entry, message) in bad.items():
        with pytest.raises(UsageError) as e:
            load_credentials(_creds_file(tmp_path, entry))
        assert message in str(e.value), name
        assert "weak-auth-key-27" not in str(e.value) and "weak-priv-key-27" not in str(e.value)


ENGINE = bytes.fromhex("80001f88804bda9a497189116b00000000")


@fuzz
@given(st.sampled_from(["MD5_DES", "SHA_AES", "MD5_ONLY"]), st.data())
def test_decode_with_keys_never_raises_anything_else(which: str, data: st.DataObject) -> None:
    f = dict({"MD5_DES": MD5_DES, "SHA_AES": SHA_AES, "MD5_ONLY": MD5_ONLY}[which])
    keys = v3.localize(f["user"], f["auth_protocol"], f["auth_key"], f.get("priv_protocol", ""),
                       f.get("priv_key", ""), ENGINE)
    valid = v3.get_authenticated(7, 7, keys, ENGINE, 1, 100)
    # our own authenticated message reads back (digest checked, scoped PDU decrypted)
    mine = v3.decode(valid, keys)
    assert (mine.msg_id, mine.user, mine.pdu) == (7, f["user"], "GetRequestPDU")
    sent = data.draw(st.one_of(st.binary(max_size=600), mutated(st.just(valid))))
    bounded(v3.decode, sent, keys, allowed=(v3.SnmpV3Error,))
