"""ldap.anonymous and the rules of rules/ldap.yaml against real OpenLDAP slapd on loopback: a weak directory (anonymous
reads, no TLS) and its hardened twin (no anonymous bind or reads, simple binds only under TLS) that must stay silent.
The scan runs through the real CLI and SQLite file; `ldapsearch -x` is the independent peer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.checks.ldap_daemons import SUFFIX, USERS, need_slapd, start_slapd
from tests.helpers import observations, scan
from tests.loopback import pick_port

WEAK, HARDENED = "127.25.0.20", "127.25.0.21"
RULES = {r["id"] for r in yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "baselines/profiles/tcm-2024-l3/rules/ldap.yaml").read_text())["rules"]}
# slapd's Cyrus SASL has no GSS-SPNEGO: the unsigned NTLM probe ends at its first leg
NO_SPNEGO = {"accepted": False, "result": 7, "description": "authMethodNotSupported",
             "message": "SASL(-4): no mechanism available: Couldn't find mech GSS-SPNEGO", "stage": "mechanism"}
SASL = ["SCRAM-SHA-512", "SCRAM-SHA-384", "SCRAM-SHA-256", "SCRAM-SHA-224", "SCRAM-SHA-1", "DIGEST-MD5", "CRAM-MD5",
        "NTLM"]


@pytest.fixture(scope="module")
def slapds(tmp_path_factory):
    need_slapd()
    port = pick_port([WEAK, HARDENED], 389)
    started = []
    try:
        for address, weak in ((WEAK, True), (HARDENED, False)):
            started.append(start_slapd(tmp_path_factory.mktemp(f"slapd-{address}"), address, port, weak=weak))
        yield port
    finally:
        for s in started:
            s.stop()


@pytest.fixture(scope="module")
def ldap_scan(slapds, tmp_path_factory):
    port = slapds
    db = tmp_path_factory.mktemp("ldapscan") / "scan.db"
    scan_id, found = scan([WEAK, HARDENED], scope=["127.25.0.0/24"], db=db, checks=["ldap"],
                          extra=["--no-ping", "--ports", str(port)])
    obs = {o["address"]: o for o in observations(db, scan_id) if o["check_id"] == "ldap.anonymous"}
    return port, found, obs


def test_weak_directory_facts(ldap_scan):
    port, _, obs = ldap_scan
    assert obs[WEAK]["port"] == port and obs[WEAK]["key"] == "directory"
    d = obs[WEAK]["data"]
    probe_dn = d["cleartext_bind"].pop("dn")
    assert probe_dn.startswith("cn=tcmscan-probe-") and probe_dn.endswith("," + SUFFIX)
    assert d == {
        "tls": False,
        "anonymous_bind": {"accepted": True, "result": 0, "description": "success", "message": ""},
        "root_dse": {"readable": True, "naming_contexts": [SUFFIX], "default_naming_context": "",
                     "ldap_versions": ["3"], "sasl_mechanisms": SASL, "starttls_offered": False, "vendor": "",
                     "vendor_version": "", "dns_host_name": "", "domain_controller": False,
                     "domain_functionality": None},
        "naming_contexts": [{"dn": SUFFIX, "base_readable": True, "user_entries": len(USERS), "capped": False,
                             "search_result": 0}],
        "user_entries": len(USERS),
        "cleartext_bind": {"refused": False, "result": 49, "description": "invalidCredentials", "message": ""},
        "unsigned_sasl_bind": NO_SPNEGO,
        # not a domain controller: its probe answers say nothing about LDAP signing
        "ldap_signing": {"domain_controller": False, "required": None, "basis": ""},
    }


def test_hardened_directory_facts(ldap_scan):
    _, _, obs = ldap_scan
    d = obs[HARDENED]["data"]
    assert d["anonymous_bind"] == {"accepted": False, "result": 48, "description": "inappropriateAuthentication",
                                   "message": "anonymous bind disallowed"}
    assert d["root_dse"]["readable"] is True and d["root_dse"]["starttls_offered"] is True
    assert d["naming_contexts"] == [{"dn": SUFFIX, "base_readable": False, "user_entries": None, "capped": False,
                                     "search_result": 50}]
    assert d["user_entries"] is None
    assert {k: v for k, v in d["cleartext_bind"].items() if k != "dn"} == {
        "refused": True, "result": 13, "description": "confidentialityRequired", "message": "confidentiality required"}
    assert d["unsigned_sasl_bind"] == NO_SPNEGO
    assert d["ldap_signing"] == {"domain_controller": False, "required": None, "basis": ""}


def test_findings_fire_on_the_weak_directory_and_not_on_its_twin(ldap_scan):
    port, found, _ = ldap_scan
    ours = {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found if f["rule_id"] in RULES}
    assert ours == {(WEAK, "data.ldap.anonymous-read", port, "high"), (WEAK, "crypto.ldap.cleartext-bind", port, "high")}


def _ldapsearch(address: str, port: int, *args: str) -> subprocess.CompletedProcess:
    if not shutil.which("ldapsearch"):
        pytest.skip("needs ldapsearch (apt-get install ldap-utils)")
    return subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldap://{address}:{port}", *args],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("address", [WEAK, HARDENED])
def test_ldapsearch_agrees(ldap_scan, address):
    """`ldapsearch -x` (an anonymous simple bind, then the search) reads what we read: the naming contexts and
    StartTLS from the root DSE, the person entries of each context; and where its anonymous bind is refused,
    ours was too."""
    port, _, obs = ldap_scan
    d = obs[address]["data"]
    root = _ldapsearch(address, port, "-s", "base", "-b", "", "namingContexts", "supportedExtension")
    if not d["anonymous_bind"]["accepted"]:
        assert root.returncode == 48 and "anonymous bind disallowed" in root.stderr
        return
    assert root.returncode == 0, root.stderr
    lines = root.stdout.splitlines()
    assert [ln.split(": ", 1)[1] for ln in lines if ln.startswith("namingContexts: ")] == \
        d["root_dse"]["naming_contexts"]
    assert ("supportedExtension: 1.3.6.1.4.1.1466.20037" in lines) == d["root_dse"]["starttls_offered"]
    for c in d["naming_contexts"]:
        people = _ldapsearch(address, port, "-b", c["dn"], "(|(objectClass=person)(objectClass=user)"
                             "(objectClass=inetOrgPerson)(objectClass=posixAccount))", "1.1")
        assert people.returncode == 0
        assert sum(1 for ln in people.stdout.splitlines() if ln.startswith("dn: ")) == c["user_entries"]


@pytest.fixture(scope="module")
def tls_scan(slapds, tmp_path_factory):
    """tls.scan on the same directories: LDAP joined the STARTTLS dialogues (checks/tls/_starttls.py)."""
    port = slapds
    db = tmp_path_factory.mktemp("ldaptls") / "scan.db"
    scan_id, found = scan([WEAK, HARDENED], scope=["127.25.0.0/24"], db=db, checks=["tls"],
                          extra=["--no-ping", "--ports", str(port)])
    obs = {o["address"]: o for o in observations(db, scan_id) if o["check_id"] == "tls.scan"}
    return port, found, obs


def test_starttls_for_ldap(tls_scan):
    port, found, obs = tls_scan
    weak = obs[WEAK]
    assert (weak["port"], weak["key"], weak["data"]) == (port, "starttls", {"starttls": {
        "protocol": "ldap", "offered": False, "reply": "StartTLS refused: 2 protocolError unsupported extended operation"}})
    hard = obs[HARDENED]
    assert (hard["key"], hard["data"]["starttls"]) == ("versions", {"protocol": "ldap", "offered": True})
    assert hard["data"]["offered"] == ["TLSv1.2", "TLSv1.3"]
    assert hard["data"]["certificate"]["subject"] == f"CN={HARDENED}"
    # the weak directory's cleartext-only LDAP is crypto.ldap.cleartext-bind's finding (no-starttls judges mail/FTP);
    # the hardened one (TLS 1.2+, a one-year certificate, not internet-facing) gives none
    assert [f for f in found if f["address"] in (WEAK, HARDENED)] == []


@pytest.mark.parametrize(("flag", "accepted"), [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True),
                                                ("-tls1_3", True)])
def test_openssl_starttls_ldap_agrees(tls_scan, flag, accepted):
    """`openssl s_client -starttls ldap` connects with exactly the versions we found on the hardened directory
    (security level 0, so that OpenSSL itself would accept a legacy handshake the server offered)."""
    port, _, obs = tls_scan
    p = subprocess.run(["openssl", "s_client", "-starttls", "ldap", "-connect", f"{HARDENED}:{port}", flag,
                        "-cipher", "DEFAULT@SECLEVEL=0", "-brief"], input="", capture_output=True, text=True,
                       timeout=30)
    version = {"-tls1": "TLSv1.0", "-tls1_1": "TLSv1.1", "-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[flag]
    assert (p.returncode == 0) == accepted == (version in obs[HARDENED]["data"]["offered"]), p.stderr[-400:]
