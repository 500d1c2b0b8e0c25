"""The SMB and directory checks on the lab's Windows-style hosts -- the Samba AD DC (dc), the weak file server
(filesrv) and its hardened twin (filesrv-sec) -- state the same facts as independent tools run from the same
vantage point (10.77.0.1): nmap's smb-protocols / smb2-security-mode and smbclient for smb.negotiate and
smb.shares, ldapsearch -x for ldap.anonymous, samba-tool on the DC itself (over SSH) for ldap.directory-policy.
The tools' invocations are the loopback tests' (tests/checks/test_smb.py, test_ldap.py, test_ldap_policy.py).

Each check runs as one attempt through the runner, planned as a scan plans it: the asset is built from the lab's
inventory (class, zone, fragility), the credentials are the lab's file. `attempt` and `facts` serve the other
tests/lab/test_peers_*.py files too.  Targets: lab addresses only."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import subprocess
from typing import Any

import pytest

from scanner.core.models import AttemptResult, Service
from scanner.engine.assets import build_asset
from scanner.engine.inventory import load_inventory
from scanner.engine.plugins import load_registry
from scanner.engine.runner import execute_attempt, plan_attempts
from scanner.sdk.context import RunEnv
from scanner.sdk.credentials import load_credentials
from tests.checks.test_ldap import _ldapsearch
from tests.checks.test_smb import NMAP_DIALECTS
from tests.checks.test_smb import _nmap as nmap_smb
from tests.lab.test_plants_live import ssh

pytestmark = pytest.mark.lab

LAB_SCOPE = ["10.77.0.0/24"]


def address_of(lab: dict[str, Any], name: str) -> str:
    return next(h["address"] for h in lab["hosts"] if h["name"] == name)


def attempt(lab: dict[str, Any], name: str, check_id: str, service: Service):
    """(asset, result) of one attempt of `check_id` on lab host `name` offering `service`, planned by the scan's
    planner (timeout, safe mode of a fragile asset, credentials needed) and run by the runner."""
    asset = build_asset(address_of(lab, name), [service], load_inventory(lab["inventory"]))
    creds = load_credentials(lab["credentials"])
    specs, decided = plan_attempts("peers", [asset], [load_registry().get(check_id)],
                                   credential_types=lambda a: {c.type for c in creds.items if c.matches(a)})
    assert (len(specs), decided) == (1, []), decided
    return asset, execute_attempt(specs[0], RunEnv(scope=LAB_SCOPE, credentials=creds))


def completed(r: AttemptResult) -> dict[str, dict]:
    """The observations of a completed attempt, by key."""
    assert (r.status, r.reason, r.detail) == ("completed", "", ""), (r.check_id, r.address, r.port)
    return {o.key: o.data for o in r.observations}


def facts(lab: dict[str, Any], name: str, check_id: str, service: Service) -> dict[str, dict]:
    return completed(attempt(lab, name, check_id, service)[1])


SMB = Service(445, name="microsoft-ds")
HOSTS = ("dc", "filesrv", "filesrv-sec")


# ------------------------------------------------------------------------------------------------ smb.negotiate

def nmap_negotiate(address: str) -> dict:
    """nmap 7.93's smb-protocols dialects (our names) and smb2-security-mode's dialect and signing sentence."""
    out = nmap_smb(address, 445)
    block = re.search(r"smb-protocols:\s*\n\|\s+dialects:\s*\n((?:\|_?\s{4,}\S.*\n)+)", out)
    mode = re.search(r"smb2-security-mode:\s*\n\|\s+(\d+):\s*\n\|_?\s+Message signing (.+)", out)
    assert block and mode, out
    return {"dialects": [NMAP_DIALECTS[line.lstrip("|_ ").strip()] for line in block.group(1).splitlines()],
            "signing_dialect": NMAP_DIALECTS[mode.group(1)], "signing": mode.group(2).strip()}


@pytest.mark.parametrize(("name", "dialects", "required"), [
    ("dc", ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"], True),                  # a Samba DC's defaults
    ("filesrv", ["NT LM 0.12", "2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"], False),  # plants smb1, smb-signing-off
    ("filesrv-sec", ["3.1.1"], True),                                          # min protocol SMB3, mandatory
])
def test_smb_negotiate_equals_nmap(lab, name, dialects, required):
    ours = facts(lab, name, "smb.negotiate", SMB)["negotiate"]
    theirs = nmap_negotiate(address_of(lab, name))
    assert theirs == {"dialects": ours["dialects"], "signing_dialect": ours["dialects"][-1],
                      "signing": "enabled and required" if ours["signing_required"] else "enabled but not required"}
    assert (ours["dialects"], ours["smb1"], ours["signing_required"]) == (dialects, "NT LM 0.12" in dialects, required)


# ------------------------------------------------------------------------------------------------ smb.shares

def smbclient(*args: str) -> tuple[int, str]:
    p = subprocess.run(["smbclient", *args, "--option=client min protocol=SMB2"], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def smbclient_view(address: str) -> dict:
    """What smbclient sees with the two sessions smb.shares tries: null (-N) and a made-up user without a password
    (a guest where the server maps bad users to guest). A session is up unless its setup failed; the share list
    is the first session's that lists (-g: type|name|remark); a share is readable by a session whose `ls` works,
    and `ls` counts its files and folders (without . and ..)."""
    sessions = {"null": ["-N"], "guest": ["-U", f"tcmscan-peer-{secrets.token_hex(4)}%"]}
    view: dict[str, Any] = {"sessions": {}, "listed_by": None, "shares": [], "readable": {}, "entries": {}}
    for kind, who in sessions.items():
        rc, out = smbclient(*who, "-L", f"//{address}", "-g")
        view["sessions"][kind] = "session setup failed" not in out
        if rc == 0 and view["listed_by"] is None:
            view["listed_by"] = kind
            view["shares"] = [tuple(line.split("|", 2)) for line in out.splitlines()
                              if line.startswith(("Disk|", "IPC|", "Printer|"))]
    for kind_, share, _remark in view["shares"]:
        if kind_ != "Disk":
            continue
        for kind, who in sessions.items():
            rc, out = smbclient(f"//{address}/{share}", *who, "-c", "ls")
            if rc != 0:
                continue
            view["readable"].setdefault(share, []).append(kind)
            rows = [m.groups() for m in re.finditer(r"^  (.+?)\s+([DNAHSR]+)\s+\d+\s+\w{3} \w{3} ", out, re.M)]
            entries = [flags for file, flags in rows if file not in (".", "..")]
            view["entries"][share] = {"files": sum("D" not in f for f in entries),
                                      "folders": sum("D" in f for f in entries)}
    return view


@pytest.mark.parametrize("name", HOSTS)
def test_smb_shares_equal_smbclient(lab, name):
    ours = facts(lab, name, "smb.shares", SMB)["shares"]
    theirs = smbclient_view(address_of(lab, name))
    assert theirs["sessions"] == {"null": ours["null_session"], "guest": ours["guest_session"]}
    assert theirs["listed_by"] == ours["listed_by"]
    kinds = {"disk": "Disk", "ipc": "IPC", "printer": "Printer"}
    assert theirs["shares"] == [(kinds[s["type"]], s["name"], s["remark"]) for s in ours["shares"]]
    assert theirs["readable"] == {s["name"]: s["readable_by"] for s in ours["shares"] if s["readable_by"]}
    assert theirs["entries"] == {s["name"]: {"files": s["files"], "folders": s["folders"]}
                                 for s in ours["shares"] if s["readable_by"]}


def test_smb_shares_ground_truth(lab):
    """What smbclient confirmed above, pinned to the plants: only filesrv lists and lets a guest read."""
    got = {name: facts(lab, name, "smb.shares", SMB)["shares"] for name in HOSTS}
    assert {n: (d["null_session"], d["guest_session"], d["listed_by"]) for n, d in got.items()} == {
        "dc": (False, False, None), "filesrv": (True, True, "null"), "filesrv-sec": (True, False, None)}
    assert [(s["name"], s["readable_by"], s["files"], s["folders"]) for s in got["filesrv"]["shares"]] == [
        ("reports", ["null", "guest"], 3, 1), ("IPC$", [], None, None)]
    assert (got["dc"]["server"]["dns_domain"], got["dc"]["server"]["netbios_name"]) == ("hospital.lab", "DC")


# ------------------------------------------------------------------------------------------------ ldap.anonymous

def ldif(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ": " in line:
            key, value = line.split(": ", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("port", [389, 3268])     # the DC's LDAP and its global catalogue (nmap -sV: both "ldap")
def test_ldap_anonymous_equals_ldapsearch(lab, port):
    """ldapsearch -x: its anonymous bind and root DSE read equal ours attribute by attribute; per naming context,
    its base read and its person/user search end with the result codes ours recorded (its exit status is the
    LDAP result code); a simple bind as our probe's made-up DN ends as ours did, with the same message."""
    address = address_of(lab, "dc")
    d = facts(lab, "dc", "ldap.anonymous", Service(port, name="ldap"))["directory"]
    root = _ldapsearch(address, port, "-s", "base", "-b", "", "namingContexts", "defaultNamingContext",
                       "supportedLDAPVersion", "supportedSASLMechanisms", "supportedExtension", "vendorName",
                       "vendorVersion", "dnsHostName", "domainControllerFunctionality", "domainFunctionality")
    assert (root.returncode == 0, d["anonymous_bind"]["accepted"]) == (True, True), root.stderr
    a = ldif(root.stdout)
    assert {k: d["root_dse"][k] for k in ("naming_contexts", "default_naming_context", "ldap_versions",
                                          "sasl_mechanisms", "starttls_offered", "vendor", "vendor_version",
                                          "dns_host_name", "domain_controller", "domain_functionality")} == {
        "naming_contexts": a["namingContexts"], "default_naming_context": a["defaultNamingContext"][0],
        "ldap_versions": a["supportedLDAPVersion"], "sasl_mechanisms": a["supportedSASLMechanisms"],
        "starttls_offered": "1.3.6.1.4.1.1466.20037" in a.get("supportedExtension", []),
        "vendor": a["vendorName"][0], "vendor_version": a["vendorVersion"][0], "dns_host_name": a["dnsHostName"][0],
        "domain_controller": "domainControllerFunctionality" in a,
        "domain_functionality": int(a["domainFunctionality"][0])}
    theirs = []
    for c in d["naming_contexts"]:
        base = _ldapsearch(address, port, "-s", "base", "-b", c["dn"], "1.1")
        people = _ldapsearch(address, port, "-b", c["dn"], "(|(objectClass=person)(objectClass=user)"
                             "(objectClass=inetOrgPerson)(objectClass=posixAccount))", "1.1")
        found = sum(line.startswith("dn: ") for line in people.stdout.splitlines())
        theirs.append({"dn": c["dn"], "base_readable": base.returncode == 0 and "dn: " in base.stdout,
                       "user_entries": found if people.returncode in (0, 4) else None,
                       "capped": people.returncode == 4, "search_result": people.returncode})
    assert theirs == d["naming_contexts"]
    probe = d["cleartext_bind"]
    bind = _ldapsearch(address, port, "-D", probe["dn"], "-w", secrets.token_urlsafe(18), "-s", "base", "-b", "",
                       "1.1")
    info = re.search(r"additional info: (.*)$", bind.stderr, re.M)
    assert (bind.returncode, info.group(1) if info else "") == (probe["result"], probe["message"]), bind.stderr
    # the plant cleartext-simple-bind: a wrong password is judged (49), not refused for want of TLS (8/13)
    assert (probe["refused"], probe["result"], d["user_entries"]) == (False, 49, None)


# ------------------------------------------------------------------------------------------------ ldap.directory-policy

SAMBA_TOOL = ("samba-tool domain passwordsettings show; echo '#admins'; samba-tool group listmembers 'Domain Admins';"
              " echo '#enterprise'; samba-tool group listmembers 'Enterprise Admins'; echo '#enabled';"
              " samba-tool user list --hide-disabled; echo '#accounts';"
              " for u in $(samba-tool user list); do samba-tool user show \"$u\""
              " --attributes=sAMAccountName,userAccountControl,lastLogonTimestamp; done")
UF_ACCOUNTDISABLE, UF_PASSWD_NOTREQD, UF_DONT_EXPIRE_PASSWD = 0x2, 0x20, 0x10000


def filetime(value: str) -> str:
    """A FILETIME (100 ns since 1601) as our ISO text, to the second."""
    t = dt.datetime(1601, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(value) // 10)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_directory_policy_equals_samba_tool(lab):
    """samba-tool on the DC reads sam.ldb directly, not over LDAP: the password and lockout policy
    (`domain passwordsettings show`), the members of Domain Admins and Enterprise Admins, the enabled accounts
    (`user list --hide-disabled`) and each account's userAccountControl flags and lastLogonTimestamp
    (`user show`) equal what ldap.directory-policy read with the lab's read-only account. Run after our attempt:
    its bind is what sets audit's lastLogonTimestamp."""
    d = facts(lab, "dc", "ldap.directory-policy", Service(389, name="ldap"))["policy"]
    text = ssh(address_of(lab, "dc"), SAMBA_TOOL)
    settings, admins, enterprise, enabled, shown = re.split(r"^#\w+$", text, flags=re.M)
    theirs = dict(re.findall(r"^([A-Z][^:\n]+): (\S+)$", settings, re.M))
    p, lk = d["password_policy"], d["lockout_policy"]
    assert re.search(r"Password information for domain '(.+)'", settings).group(1) == d["domain"]
    assert {"Password complexity": "on" if p["complexity"] else "off",
            "Password history length": str(p["history"]),
            "Minimum password length": str(p["min_length"]),
            "Minimum password age (days)": str(round(p["min_age_days"] or 0)),
            "Maximum password age (days)": str(round(p["max_age_days"] or 0)),
            "Account lockout threshold (attempts)": str(lk["threshold"]),
            "Account lockout duration (mins)": str(round(lk["duration_minutes"])),
            "Reset account lockout after (mins)": str(round(lk["window_minutes"]))} == {
        k: v for k, v in theirs.items() if k != "Store plaintext passwords"}
    assert (sorted(admins.split()), sorted(enterprise.split())) == (sorted(d["domain_admins"]),
                                                                    sorted(d["enterprise_admins"]))
    assert sorted(enabled.split()) == sorted(a["name"] for a in d["accounts"] if a["enabled"])
    accounts = {}
    for entry in shown.strip().split("\n\n"):
        a = ldif(entry)
        uac = int(a["userAccountControl"][0])
        accounts[a["sAMAccountName"][0]] = {
            "enabled": not uac & UF_ACCOUNTDISABLE, "password_never_expires": bool(uac & UF_DONT_EXPIRE_PASSWD),
            "password_not_required": bool(uac & UF_PASSWD_NOTREQD),
            "last_logon": filetime(a["lastLogonTimestamp"][0]) if "lastLogonTimestamp" in a else None}
    assert accounts == {a["name"]: {k: v for k, v in a.items() if k not in ("name", "created")} for a in d["accounts"]}
    assert (d["accounts_total"], d["truncated"]) == (len(accounts), False)
    # the plants weak-domain-policy, never-expires, no-password-required, stale-account, extra-domain-admins
    assert (p["min_length"], p["complexity"], p["history"], p["max_age_days"], lk["threshold"]) == (6, False, 0, None, 0)
    assert [n for n, a in accounts.items() if a["password_never_expires"] and a["enabled"]] == ["lisi"]
    assert sorted(n for n, a in accounts.items() if a["password_not_required"] and a["enabled"]) == ["guahao"]
    assert accounts["zhangsan"]["last_logon"] == "2012-12-14T23:06:40Z"
    assert sorted(d["domain_admins"]) == ["Administrator", "pacs-admin", "wangwu"]
