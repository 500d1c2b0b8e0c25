"""The remote-access and management checks on the lab state the same facts as independent tools run from the same
vantage point (10.77.0.1): vnc.security on imaging-ws / imaging-sec (medical devices: assets built as the lab's
inventory declares them, safe mode on) = nmap vnc-info; rdp.security on imaging-ws = nmap rdp-enum-encryption;
ipmi.rmcp on bmc = nmap ipmi-version / ipmi-cipher-zero and ipmitool's RAKP answers; snmp.v3 on core-switch =
snmpwalk / snmpget -v3; http.consoles (and creds.default's Tomcat login) on appsrv / appsrv-sec = curl.
The tools run as the loopback tests run them (tests/checks/test_vnc_security.py, test_rdp_security.py,
test_ipmi_rmcp.py, test_snmp_v3.py, test_http_consoles.py).  Targets: lab addresses only."""

from __future__ import annotations

import re
import secrets
import subprocess

import pytest

from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, AttemptResult, Service
from tests.checks.test_http_consoles import _curl as curl
from tests.checks.test_ipmi_rmcp import _nmap as nmap_ipmi
from tests.checks.test_rdp_security import NMAP_NAMES, _nmap_security_layer
from tests.checks.test_vnc_security import _nmap_vnc_info
from tests.lab.test_peers_windows import address_of, attempt, completed, facts

pytestmark = pytest.mark.lab


def fired(asset: Asset, r: AttemptResult) -> set[tuple[str, int | None, str]]:
    """(rule, port, severity) of what the default profile makes of this one attempt, as a scan would judge it."""
    record = {"check_id": r.check_id, "address": r.address, "port": r.port, "status": r.status,
              "reason": r.reason, "detail": r.detail}
    found, _ = evaluate_scan(load_profile(DEFAULT_PROFILE), [asset], [record], r.observations, vantage="user")
    return {(f.rule_id, f.port, f.severity) for f in found}


# ------------------------------------------------------------------------------------------------ vnc.security

@pytest.mark.parametrize(("name", "types", "subtypes", "rules"), [
    ("imaging-ws", [1], [], {("hardening.vnc-no-auth", 5900, "critical")}),   # plant vnc-no-auth (medical: critical)
    ("imaging-sec", [19], [262], set()),                                       # VeNCrypt X509Plain only: silent
])
def test_vnc_security_equals_nmap_vnc_info(lab, name, types, subtypes, rules):
    """nmap's version, security types and VeNCrypt sub-types equal ours; its 'does not require authentication'
    warning stands exactly where our no-auth finding does."""
    asset, r = attempt(lab, name, "vnc.security", Service(5900, name="vnc"))
    assert (asset.cls, asset.fragile) == ("medical-device", True)
    ours = completed(r)["security"]
    # TigerVNC refuses a host after 5 connections without a login until Xvnc restarts (BlacklistThreshold): the
    # comparison needs a lab whose Xvnc has not yet been probed that often from 10.77.0.1
    assert ours["refused"] == "", f"{name}'s Xvnc black-lists 10.77.0.1: {ours['refused']}"
    found = fired(asset, r)
    assert _nmap_vnc_info(asset.address, 5900) == {
        "version": ours["version"], "types": ours["types"], "vencrypt_subtypes": ours["vencrypt_subtypes"],
        "no_auth_warning": any(rule == "hardening.vnc-no-auth" for rule, _p, _s in found)}
    assert (ours["version"], ours["types"], ours["vencrypt_subtypes"], found) == ("3.8", types, subtypes, rules)


# ------------------------------------------------------------------------------------------------ rdp.security

def test_rdp_security_equals_nmap_rdp_enum_encryption(lab):
    """Per request, nmap's SUCCESS / FAILED (code) equals our negotiation response / failure; its encryption level
    and RC4 methods equal ours.  xrdp's security_layer=rdp answers every request selecting standard RDP security."""
    asset, r = attempt(lab, "imaging-ws", "rdp.security", Service(3389, name="ms-wbt-server"))
    ours = completed(r)["negotiation"]
    layer = {NMAP_NAMES[o["requested"]]: "SUCCESS" if o["negotiation"] == "response" else f"FAILED ({o['failure']})"
             for o in ours["offers"]}
    assert _nmap_security_layer(asset.address, 3389) == {
        "layer": layer, "ciphers": sorted(ours["encryption_methods"]), "level": ours["encryption_level"]}
    # the plant rdp-legacy-layer: security_layer=rdp, crypt_level=low
    assert [o["selected"] for o in ours["offers"]] == ["RDP"] * 5
    assert (ours["tls"], ours["credssp"], ours["encryption_methods"], ours["encryption_level"]) == (
        False, False, ["40-bit RC4"], "Low")
    assert fired(asset, r) == {("crypto.rdp-standard-security", 3389, "high"),
                               ("hardening.rdp-nla-not-required", 3389, "medium")}


# ------------------------------------------------------------------------------------------------ ipmi.rmcp

# nmap ipmi-version's PassAuth words -> our flags; its UserAuth words -> our auth type names
PASS_AUTH = {"auth_msg": "per_message_auth", "auth_user": "user_level_auth", "non_null_user": "non_null_usernames",
             "null_user": "null_usernames", "anonymous_user": "anonymous_login"}
USER_AUTH = {"null": "none", "md2": "md2", "md5": "md5", "password": "password"}


def ipmitool_rakp(address: str, user: str) -> str:
    """ipmitool (lanplus, cipher suite 3) with a wrong password: 'RAKP 2 HMAC is invalid' once the BMC knew the
    name and sent its RAKP message 2 (the hash an attacker cracks offline), 'unauthorized name' otherwise."""
    p = subprocess.run(["ipmitool", "-v", "-I", "lanplus", "-C", "3", "-N", "2", "-R", "1", "-H", address, "-U", user,
                        "-P", f"wrong-{secrets.token_hex(6)}", "chassis", "status"],
                       capture_output=True, text=True, timeout=60)
    out = (p.stdout + p.stderr).lower()
    return "hmac" if "rakp 2 hmac is invalid" in out else "unauthorized name" if "unauthorized name" in out else out


def test_ipmi_rmcp_equals_nmap_and_ipmitool(lab):
    address = address_of(lab, "bmc")
    ours = facts(lab, "bmc", "ipmi.rmcp", Service(623, proto="udp", name="asf-rmcp"))["rmcp"]
    theirs = nmap_ipmi(address)
    assert theirs == {"user_auth": {word for word, t in USER_AUTH.items() if t in ours["auth_types"]},
                      "pass_auth": {word for word, flag in PASS_AUTH.items() if ours[flag]},
                      "level": set(ours["ipmi_versions"]), "cipher_zero": ours["cipher_zero"]}
    assert {u: ipmitool_rakp(address, u) for u in ours["rakp_tried"]} == {
        u: "hmac" if u in ours["rakp_hash_users"] else "unauthorized name" for u in ours["rakp_tried"]}
    # the plants ipmi-cipher-zero, ipmi-anonymous, ipmi-default-user (ADMIN), ipmi-weak-auth
    assert (ours["cipher_zero"], ours["anonymous_login"], ours["rakp_hash_users"], ours["auth_types"]) == (
        True, True, ["ADMIN"], ["none", "md2", "md5", "password"])


# ------------------------------------------------------------------------------------------------ snmp.v3

def snmp3(tool: str, address: str, user: str, *oids: str, out: tuple[str, ...] = ()) -> str:
    p = subprocess.run([tool, "-v3", "-l", "noAuthNoPriv", "-u", user, "-r", "1", "-t", "2", *out, address, *oids],
                       capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


def test_snmp_v3_equals_snmpwalk(lab):
    """Per user name of our list, snmpwalk -v3 noAuthNoPriv: a value <=> noauth_users, authorizationError <=>
    auth_users, 'Unknown user name' <=> neither; snmpget as `initial` reads the engine ID, engine boots and
    sysDescr we recorded (the enterprise number is the engine ID's bytes 1-4)."""
    address = address_of(lab, "core-switch")
    ours = facts(lab, "core-switch", "snmp.v3", Service(161, proto="udp", name="snmp"))["snmpv3"]
    theirs = {}
    for user in ours["tried"]:
        out = snmp3("snmpwalk", address, user, "1.3.6.1.2.1.1.1")
        theirs[user] = ("noauth" if "STRING:" in out else "auth" if "authorizationError" in out
                        else "unknown" if "Unknown user name" in out else out)
    assert theirs == {u: "noauth" if u in ours["noauth_users"] else "auth" if u in ours["auth_users"] else "unknown"
                      for u in ours["tried"]}
    engine = snmp3("snmpget", address, "initial", "1.3.6.1.6.3.10.2.1.1.0", out=("-Ovq", "-Ox"))
    boots, descr = snmp3("snmpget", address, "initial", "1.3.6.1.6.3.10.2.1.2.0", "1.3.6.1.2.1.1.1.0",
                         out=("-Ovq",)).splitlines()
    engine_id = "".join(c for c in engine.lower() if c in "0123456789abcdef")
    assert (engine_id, int(boots), descr.strip('"'), int(engine_id[:8], 16) & 0x7FFFFFFF) == (
        ours["engine_id"], ours["boots"], ours["sys_descr"], ours["enterprise"])
    assert (ours["noauth_users"], ours["auth_users"]) == (["initial"], [])     # the plant snmpv3-noauth


# ------------------------------------------------------------------------------------------------ http.consoles

TOMCAT = Service(8080, name="http")    # nmap -sV: Apache Tomcat


def curl_head(*args: str) -> tuple[int, dict[str, list[str]]]:
    """Status and headers (lower-case names) of curl's answer."""
    lines = curl("-o", "/dev/null", "-D", "-", *args).splitlines()
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers


@pytest.mark.parametrize(("name", "listing", "consoles"), [
    ("appsrv", True, ["/manager/html", "/manager/text/list", "/host-manager/html", "/manager/status"]),
    ("appsrv-sec", False, []),
])
def test_http_consoles_equal_curl(lab, name, listing, consoles):
    """Every console path of the table: curl's status and WWW-Authenticate scheme equal ours where we found a console
    and curl gets 404 everywhere else; on / its status, Server, framing and CSP headers, cookie names and page
    title equal our web surface; TRACE: its status and echo."""
    base = f"http://{address_of(lab, name)}:8080"
    d = facts(lab, name, "http.consoles", TOMCAT)
    found = {c["path"]: (c["status"], c["login"]) for c in d["consoles"]["found"]}
    theirs = {}
    for entry in knowledge()["web_consoles"]["consoles"]:
        status, headers = curl_head(*(["-I"] if entry.get("method") == "HEAD" else []), base + entry["path"])
        if status != 404:
            theirs[entry["path"]] = (status, (headers.get("www-authenticate", [""])[0].split() or [""])[0])
    assert theirs == found
    status, headers = curl_head(base + "/")
    title = re.search(r"<title>(.*?)</title>", curl(base + "/"), re.S)
    xfo = headers.get("x-frame-options", [""])[0].lower()
    csp = " ".join(headers.get("content-security-policy", [])).lower()
    token = f"curl-trace-{secrets.token_hex(4)}"
    trace = curl("-i", "-X", "TRACE", "-H", f"X-Tcmscan-Trace: {token}", base + "/")
    trace_status = int(trace.split()[1])
    surface = d["web-surface"]
    assert {"status": status, "server": headers.get("server", [""])[0], "title": title.group(1).strip(),
            "frame_protection": xfo in ("deny", "sameorigin") or "frame-ancestors" in csp, "csp": bool(csp),
            "cookies": [c.split("=", 1)[0] for c in headers.get("set-cookie", [])],
            "trace_enabled": trace_status == 200 and token in trace, "trace_status": trace_status} == {
        **{k: surface[k] for k in ("status", "server", "title", "frame_protection", "csp", "trace_enabled",
                                   "trace_status")}, "cookies": [c["name"] for c in surface["cookies"]]}
    # the plants tomcat-manager-default, tomcat-trace, tomcat-listing; the twin keeps Tomcat's defaults
    assert (list(found), surface["directory_listing"], surface["trace_enabled"]) == (consoles, listing, listing)


def test_tomcat_default_login_equals_curl(lab):
    """creds.default on appsrv logs in to the manager with the Tomcat list; curl gets the same status with the pair
    it accepted and 401 with the pair before it. On the twin there is no Basic challenge to try (not applicable),
    and curl finds no console there (above) and no challenge on /."""
    base = f"http://{address_of(lab, 'appsrv')}:8080"
    login = facts(lab, "appsrv", "creds.default", TOMCAT)["default-login"]
    entries = knowledge()["default_credentials"]["services"]["tomcat-manager"]
    tried = entries[:login["tried"]]
    assert tried[-1]["id"] == login["entry"] and login["accepted"] is True
    codes = [curl("-o", "/dev/null", "-w", "%{http_code}", "-u", f"{e['user']}:{e['password']}", base + login["page"])
             for e in tried]
    assert codes == ["401"] * (len(tried) - 1) + [login["detail"].removeprefix("HTTP ")]
    assert (login["user"], login["entry"]) == ("tomcat", "tomcat-tomcat-tomcat")      # plant tomcat-manager-default
    _, r = attempt(lab, "appsrv-sec", "creds.default", TOMCAT)
    assert (r.status, r.observations) == ("not_applicable", [])
    assert "www-authenticate" not in curl_head(f"http://{address_of(lab, 'appsrv-sec')}:8080/")[1]
