"""ldap.directory-policy and the 人员安全 rules (rules/accounts-ad.yaml) against real Samba AD domain controllers on
loopback: a weak domain with the lab's plants and a hardened twin that must stay silent. The scan runs through the
real CLI and SQLite file with a credentials file holding the read-only directory account; `samba-tool domain
passwordsettings show` is the independent peer for the policy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.checks.samba_dc import AUDIT_PASSWORD, AUDIT_USER, need_samba_dc, remove, start_dc
from tests.helpers import observations, scan, tcmscan

WEAK, HARDENED = "127.25.0.30", "127.25.0.31"
ROOT = Path(__file__).resolve().parents[2]
RULES = {r["id"] for f in ("accounts-ad.yaml", "ldap.yaml")
         for r in yaml.safe_load((ROOT / "baselines/profiles/tcm-2024-l3/rules" / f).read_text())["rules"]}


@pytest.fixture(scope="module")
def dcs(tmp_path_factory):
    need_samba_dc()
    started, dirs = [], []
    try:
        for address, weak in ((WEAK, True), (HARDENED, False)):
            d = tmp_path_factory.mktemp(f"dc-{address}")
            dirs.append(d)
            started.append(start_dc(d, address, weak=weak))
        yield {dc.address: dc for dc in started}
    finally:
        for dc in started:
            dc.stop()
        for d in dirs:
            remove(d)


@pytest.fixture(scope="module")
def policy_scan(dcs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("policyscan")
    creds = tmp / "credentials.yaml"
    creds.write_text(yaml.safe_dump({"credentials": [
        {"match": a, "type": "ldap", "user": f"{AUDIT_USER}@tcm.test", "password": AUDIT_PASSWORD,
         "ca_file": str(dc.ca_file)} for a, dc in dcs.items()]}), encoding="utf-8")
    creds.chmod(0o600)
    # the hardened DC's inventory entry declares a (wrong) class: the inventory wins over the checks' facts
    inventory = tmp / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"assets": [{"address": HARDENED, "name": "dc-b", "class": "workstation"}]}),
                         encoding="utf-8")
    db = tmp / "scan.db"
    scan_id, found = scan([WEAK, HARDENED], scope=["127.25.0.0/24"], db=db, checks=["ldap"],
                          credentials=str(creds), inventory=str(inventory), extra=["--no-ping", "--ports", "389"])
    obs = {(o["address"], o["check_id"]): o for o in observations(db, scan_id)}
    return found, obs, (db, scan_id)


def _accounts(data: dict) -> dict[str, dict]:
    return {a["name"]: {k: v for k, v in a.items() if k not in ("name", "created")} for a in data["accounts"]}


def test_weak_domain_facts(policy_scan):
    _, obs, _ = policy_scan
    d = obs[(WEAK, "ldap.directory-policy")]["data"]
    assert d["domain"] == "DC=tcm,DC=test" and d["truncated"] is False
    assert d["password_policy"] == {"min_length": 6, "complexity": False, "history": 0, "max_age_days": None,
                                    "min_age_days": 1.0}
    assert d["lockout_policy"]["threshold"] == 0
    assert d["domain_admins"] == ["Administrator", "pacs-admin", "wangwu"]
    assert d["enterprise_admins"] == ["Administrator"]
    admin = {"enabled": True, "mail": False, "exchange_mailbox": False, "protected_users": False}
    assert d["admin_accounts"] == [
        {"name": "Administrator", "groups": ["Domain Admins", "Enterprise Admins"], **admin},
        {"name": "pacs-admin", "groups": ["Domain Admins"], **admin},
        {"name": "wangwu", "groups": ["Domain Admins"], **admin, "mail": True}]
    acc = _accounts(d)
    assert acc["zhangsan"]["last_logon"] == "2012-12-14T23:06:40Z"
    assert (acc["lisi"]["password_never_expires"], acc["guahao"]["password_not_required"]) == (True, True)
    plain = {"enabled": True, "password_never_expires": False, "password_not_required": False, "last_logon": None}
    for name in ("nursestation", "pacs-admin", "wangwu"):
        assert acc[name] == plain, name
    assert acc["Guest"]["enabled"] is False and acc["krbtgt"]["enabled"] is False
    assert d["accounts_total"] == len(d["accounts"]) == len(acc)
    assert set(acc) == {"Administrator", "Guest", "krbtgt", "dns-dc1", AUDIT_USER, "zhangsan", "lisi", "guahao",
                        "nursestation", "pacs-admin", "wangwu"}


def test_hardened_domain_facts(policy_scan):
    _, obs, _ = policy_scan
    d = obs[(HARDENED, "ldap.directory-policy")]["data"]
    assert d["password_policy"] == {"min_length": 12, "complexity": True, "history": 24, "max_age_days": 90.0,
                                    "min_age_days": 1.0}
    assert d["lockout_policy"] == {"threshold": 5, "duration_minutes": 30.0, "window_minutes": 30.0}
    assert d["domain_admins"] == ["admin-wang", "Administrator"]
    # zhang.san has a mail address but is no admin: not listed
    assert d["admin_accounts"] == [
        {"name": "admin-wang", "groups": ["Domain Admins"], "enabled": True, "mail": False,
         "exchange_mailbox": False, "protected_users": True},
        {"name": "Administrator", "groups": ["Domain Admins", "Enterprise Admins"], "enabled": True, "mail": False,
         "exchange_mailbox": False, "protected_users": False}]


def test_findings_fire_on_the_weak_domain_and_not_on_its_twin(policy_scan):
    found, _, _ = policy_scan
    ours = {(f["address"], f["rule_id"]): f["evidence"] for f in found if f["rule_id"] in RULES}
    assert set(ours) == {(WEAK, r) for r in (
        "accounts.ad.password-policy", "accounts.ad.no-lockout", "accounts.ad.password-never-expires",
        "accounts.ad.no-password-required", "accounts.ad.stale-account", "accounts.ad.too-many-admins",
        "accounts.ad.generic-account", "accounts.ad.admin-everyday-use", "crypto.ldap.cleartext-bind",
        "crypto.ldap.signing-not-required")}
    assert ours[(WEAK, "accounts.ad.admin-everyday-use")] == {
        "accounts": ["wangwu"], "admin_count": 3, "not_protected_users": ["Administrator", "pacs-admin", "wangwu"]}
    assert ours[(WEAK, "crypto.ldap.signing-not-required")] == {
        "required": False, "basis": "unsigned SASL bind", "bind_result": "invalidCredentials",
        "dns_host_name": "dc1.tcm.test"}
    assert ours[(WEAK, "accounts.ad.password-never-expires")] == {"accounts": ["lisi"]}
    assert ours[(WEAK, "accounts.ad.no-password-required")] == {"accounts": ["guahao"]}
    assert ours[(WEAK, "accounts.ad.stale-account")] == {"accounts": ["zhangsan"]}
    assert ours[(WEAK, "accounts.ad.generic-account")] == {"accounts": ["guahao", "nursestation"]}
    assert ours[(WEAK, "accounts.ad.password-policy")]["weak"] == ["min_length", "complexity", "history", "max_age"]


def test_cleartext_bind_facts_on_the_domain_controllers(policy_scan):
    """Samba's default 'ldap server require strong auth = yes' refuses simple binds in clear as AD's
    'LDAP server signing requirements = Require signing' does: strongerAuthRequired."""
    _, obs, _ = policy_scan
    weak, hard = (obs[(a, "ldap.anonymous")]["data"] for a in (WEAK, HARDENED))
    assert weak["root_dse"]["domain_controller"] is True and weak["root_dse"]["vendor"].startswith("Samba Team")
    assert (weak["cleartext_bind"]["refused"], weak["cleartext_bind"]["result"]) == (False, 49)
    assert (hard["cleartext_bind"]["refused"], hard["cleartext_bind"]["result"]) == (True, 8)
    # the anonymous NTLM SASL bind without signing: accepted with 'require strong auth = no', refused with 'yes'
    assert weak["unsigned_sasl_bind"] == {"accepted": True, "result": 0, "description": "success", "message": "",
                                          "stage": "bind"}
    assert hard["unsigned_sasl_bind"] == {"accepted": False, "result": 8, "description": "strongerAuthRequired",
                                          "message": "SASL:[GSS-SPNEGO]: Sign or Seal are required.", "stage": "bind"}
    assert weak["ldap_signing"] == {"domain_controller": True, "required": False, "basis": "unsigned SASL bind"}
    assert hard["ldap_signing"] == {"domain_controller": True, "required": True, "basis": "unsigned SASL bind"}
    # anonymous searches need a bind on AD and Samba AD: operationsError, nothing read
    assert {c["search_result"] for c in weak["naming_contexts"]} == {1} and weak["user_entries"] is None


def test_domain_controllers_are_reported_as_such(policy_scan, tmp_path):
    """Discovery saw only an LDAP port; after the checks, ldap.anonymous's root DSE makes both hosts domain
    controllers in the report (role, criticality 5 for the asset value). The hardened DC keeps the class its
    inventory entry declares."""
    _, _, (db, scan_id) = policy_scan
    out = tmp_path / "report"
    tcmscan("report", scan_id, "--format", "json", "--out", str(out), db=db, check=True)
    [doc] = [json.loads(f.read_text(encoding="utf-8")) for f in out.glob("*.json")]
    hosts = {h["address"]: h for h in doc["hosts"]}
    got = {a: (h["class"], h["role"], h["criticality"], h["asset_value"]) for a, h in hosts.items()}
    dc5 = {"value": 5, "from": "role domain-controller → criticality 5"}
    assert got == {WEAK: ("server", "domain-controller", 5, dc5), HARDENED: ("workstation", "domain-controller", 5, dc5)}
    from scanner.store import Store
    evidence = {a.address: a.class_evidence for a in Store(db).assets(scan_id)}
    assert evidence[WEAK] == ["server services ldap", "found by assumed",
                              "ldap.anonymous: the root DSE publishes domainControllerFunctionality (dc1.tcm.test)"]
    assert evidence[HARDENED] == ["inventory declares class workstation", "found by assumed",
                                  "ldap.anonymous: the root DSE publishes domainControllerFunctionality (dc1.tcm.test)"]


@pytest.mark.parametrize("address", [WEAK, HARDENED])
def test_samba_tool_agrees(dcs, policy_scan, address):
    """`samba-tool domain passwordsettings show` (read from sam.ldb, not over LDAP) states the same policy."""
    _, obs, _ = policy_scan
    d = obs[(address, "ldap.directory-policy")]["data"]
    text = dcs[address].tool("domain", "passwordsettings", "show")
    theirs = dict(re.findall(r"^([A-Z][^:\n]+): (\S+)$", text, re.M))
    p, lk = d["password_policy"], d["lockout_policy"]
    assert theirs["Password complexity"] == ("on" if p["complexity"] else "off")
    assert int(theirs["Password history length"]) == p["history"]
    assert int(theirs["Minimum password length"]) == p["min_length"]
    assert int(theirs["Minimum password age (days)"]) == round(p["min_age_days"] or 0)
    assert int(theirs["Maximum password age (days)"]) == round(p["max_age_days"] or 0)
    assert int(theirs["Account lockout threshold (attempts)"]) == lk["threshold"]
    # samba-tool rounds the stored intervals to whole minutes
    assert int(theirs["Account lockout duration (mins)"]) == round(lk["duration_minutes"])
    assert int(theirs["Reset account lockout after (mins)"]) == round(lk["window_minutes"])


@pytest.mark.parametrize("address", [WEAK, HARDENED])
def test_smb_facts_of_a_domain_controller(dcs, address):
    """smb.* on a Samba AD DC: signing required, no SMB1, no null or guest session, and the NTLM challenge names
    the domain (asset facts that tell a domain controller from a file server)."""
    from checks.smb import negotiate, shares
    from tests.checks.hostile_loopback import context

    [n] = negotiate.run(context(address, 445, "microsoft-ds", "smb.negotiate", timeout=40))
    assert n.data["dialects"] == ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]
    assert (n.data["smb1"], n.data["signing_required"]) == (False, True)
    [s] = shares.run(context(address, 445, "microsoft-ds", "smb.shares", timeout=60))
    assert (s.data["null_session"], s.data["guest_session"], s.data["shares"]) == (False, False, [])
    assert {k: v for k, v in s.data["server"].items() if k != "os"} == {
        "netbios_name": "DC1", "netbios_domain": "TCM", "dns_name": "dc1.tcm.test", "dns_domain": "tcm.test"}


def test_no_ca_no_password_sent():
    """Without a CA to verify the LDAPS certificate (and no insecure_tls), the password is not sent: not even a
    connection is opened."""
    from checks.ldap import directory_policy
    from scanner.sdk.credentials import Credential, CredentialStore
    from scanner.sdk.errors import CheckError
    from tests.checks.hostile_loopback import context
    from tests.loopback import Listener

    with Listener("127.25.0.40", 636) as ldaps:
        store = CredentialStore([Credential(match="127.25.0.40", type="ldap", user="audit@tcm.test", password="x")])
        with pytest.raises(CheckError) as e:
            directory_policy.run(context("127.25.0.40", 389, "ldap", "ldap.directory-policy", timeout=10,
                                         credentials=store))
        assert e.value.reason == "unsupported" and "the password was not sent" in e.value.detail
        assert ldaps.accepted == 0


def test_a_refused_bind_is_never_retried(dcs, policy_scan):
    """A wrong password: the attempt ends with reason auth after exactly one failed bind (the DC's badPwdCount for
    the account goes from 0 to 1), so the scanner can never lock the directory account out. On the hardened DC:
    with no lockout threshold (the weak one) Samba counts nothing. Runs last: it changes that counter."""
    from checks.ldap import directory_policy
    from scanner.sdk.credentials import Credential, CredentialStore
    from scanner.sdk.errors import CheckError
    from tests.checks.hostile_loopback import context

    dc = dcs[HARDENED]

    def bad_count() -> int:
        m = re.search(r"^badPwdCount: (\d+)$", dc.tool("user", "show", AUDIT_USER), re.M)
        return int(m.group(1)) if m else 0

    assert bad_count() == 0
    store = CredentialStore([Credential(match=HARDENED, type="ldap", user=f"{AUDIT_USER}@tcm.test",
                                        password="wrong-password", extra={"ca_file": str(dc.ca_file)})])
    with pytest.raises(CheckError) as e:
        directory_policy.run(context(HARDENED, 389, "ldap", "ldap.directory-policy", timeout=30, credentials=store))
    assert e.value.reason == "auth" and "49 invalidCredentials" in e.value.detail
    assert bad_count() == 1
