"""rdp.security and the rules crypto.rdp-standard-security / hardening.rdp-nla-not-required against real xrdp
servers on 127.16.0.x (security_layer negotiate, rdp and tls), through the real CLI; our per-request facts equal
nmap's rdp-enum-encryption (run with -d so it prints refusals too)."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.checks.rdp_servers import XRDP, start_xrdp
from tests.helpers import observations, scan
from tests.loopback import pick_port, stop_process

# address: (xrdp security_layer, crypt_level, inventory class, zone)
SERVERS = {
    "127.16.0.20": ("negotiate", "high", "server", "server"),          # xrdp's default
    "127.16.0.21": ("rdp", "low", "workstation", "clinical"),          # legacy layer, 40-bit RC4, clinical
    "127.16.0.22": ("tls", "high", "server", "server"),                # TLS only: still no NLA (no CredSSP)
    "127.16.0.23": ("tls", "high", "workstation", "user"),             # hardened twin: TLS only, office PC
}
NMAP_NAMES = {0: "Native RDP", 1: "SSL", 3: "CredSSP (NLA)", 4: "RDSTLS", 8: "CredSSP with Early User Auth"}


@pytest.fixture(scope="module")
def xrdp(tmp_path_factory):
    if not Path(XRDP).exists():
        pytest.skip("needs xrdp (Debian package)")
    tmp = tmp_path_factory.mktemp("xrdp")
    port = pick_port(list(SERVERS), 3389)
    procs = []
    try:
        for address, (layer, crypt, _cls, _zone) in SERVERS.items():
            procs.append(start_xrdp(tmp, address, port, layer, crypt))
        yield port
    finally:
        for p in procs:
            stop_process(p)


@pytest.fixture(scope="module")
def rdp_scan(xrdp, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rdpscan")
    inv = tmp / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": f"rdp{a.rsplit('.', 1)[1]}", "class": cls, "zone": zone}
        for a, (_l, _c, cls, zone) in SERVERS.items()]}))
    db = tmp / "scan.db"
    scan_id, found = scan(list(SERVERS), scope=["127.16.0.0/24"], db=db, checks=["rdp"], inventory=str(inv),
                          extra=["--no-ping", "--ports", str(xrdp)])
    obs = {o["address"]: o["data"] for o in observations(db, scan_id) if o["check_id"] == "rdp.security"}
    return xrdp, [f for f in found if f["port"] == xrdp], obs


def test_findings_exact(rdp_scan):
    port, found, _ = rdp_scan
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        ("127.16.0.20", "crypto.rdp-standard-security", port, "high"),
        ("127.16.0.20", "hardening.rdp-nla-not-required", port, "medium"),
        ("127.16.0.21", "crypto.rdp-standard-security", port, "high"),
        ("127.16.0.21", "hardening.rdp-nla-not-required", port, "medium"),
        ("127.16.0.22", "hardening.rdp-nla-not-required", port, "medium"),
    }
    ev = {(f["address"], f["rule_id"]): f["evidence"] for f in found}
    assert ev[("127.16.0.21", "crypto.rdp-standard-security")] == {
        "selected_for_rdp_only": "RDP", "tls": False, "negotiation_supported": True,
        "encryption_level": "Low", "encryption_methods": ["40-bit RC4"]}
    assert ev[("127.16.0.22", "hardening.rdp-nla-not-required")] == {"accepted_without_nla": ["TLS"],
                                                                      "credssp": False}


def _offers(*answers: str) -> list[dict]:
    """answers per request (0, 1, 3, 4, 8): a selected protocol name, or "!FAILURE_NAME"."""
    out = []
    for (req, names), a in zip(((0, ["RDP"]), (1, ["TLS"]), (3, ["TLS", "CredSSP"]), (4, ["RDSTLS"]),
                                (8, ["CredSSP-EX"])), answers, strict=True):
        failed = a.startswith("!")
        out.append({"requested": req, "requested_names": names, "negotiation": "failure" if failed else "response",
                    "selected": None if failed else a, "failure": a[1:] if failed else ""})
    return out


def test_observations(rdp_scan):
    """xrdp 0.9.21: CredSSP requests get TLS (no CredSSP server); RDSTLS and CredSSP-EX alone get RDP security
    where it is allowed, SSL_REQUIRED_BY_SERVER where it is not."""
    _, _, obs = rdp_scan
    assert obs["127.16.0.20"] == {"offers": _offers("RDP", "TLS", "TLS", "RDP", "RDP"), "standard_rdp_security": True,
                                  "tls": True, "credssp": False, "nla_required": False,
                                  "negotiation_supported": True, "encryption_methods": ["128-bit RC4"],
                                  "encryption_level": "High", "encryption_error": ""}
    # security_layer=rdp answers every request with a response selecting RDP security, never a failure
    assert obs["127.16.0.21"] == {
        "offers": _offers("RDP", "RDP", "RDP", "RDP", "RDP"),
        "standard_rdp_security": True, "tls": False, "credssp": False, "nla_required": False,
        "negotiation_supported": True, "encryption_methods": ["40-bit RC4"], "encryption_level": "Low",
        "encryption_error": ""}
    tls_only = {"offers": _offers("!SSL_REQUIRED_BY_SERVER", "TLS", "TLS", "!SSL_REQUIRED_BY_SERVER",
                                  "!SSL_REQUIRED_BY_SERVER"),
                "standard_rdp_security": False, "tls": True, "credssp": False, "nla_required": False,
                "negotiation_supported": True, "encryption_methods": [], "encryption_level": "",
                "encryption_error": ""}
    assert obs["127.16.0.22"] == tls_only
    assert obs["127.16.0.23"] == tls_only


def _nmap_security_layer(address: str, port: int) -> dict[str, str] | None:
    out = subprocess.run(["nmap", "-d", "-Pn", "-n", "-sT", "-p", str(port), "--script", "rdp-enum-encryption",
                          "-oX", "-", address], capture_output=True, text=True, timeout=120, check=True).stdout
    script = ET.fromstring(out).find(".//script[@id='rdp-enum-encryption']")
    if script is None:
        return None
    text = script.get("output")
    lines = [m.groups() for m in re.finditer(r"^\s+(.+?): (SUCCESS|FAILED.*|Unknown)$", text, re.M)]
    level = re.search(r"RDP Encryption level: (.+)$", text, re.M)
    return {"layer": {name: result for name, result in lines if name in NMAP_NAMES.values()},
            "ciphers": sorted(name for name, result in lines if "RC4" in name or "FIPS" in name),
            "level": level.group(1).strip() if level else ""}


def test_facts_equal_nmap_rdp_enum_encryption(rdp_scan):
    """Per request, nmap 7.93 says SUCCESS when the server answered with RDP_NEG_RSP and FAILED (code) for
    RDP_NEG_FAILURE; ours must say the same (nmap does not say which protocol a SUCCESS selected). Its
    "RDP Encryption level" and the RC4/FIPS methods it lists as SUCCESS equal our encryption_level and
    encryption_methods.

    On a server refusing standard RDP security nmap 7.93 prints nothing: after the protocol loop its cipher loop
    sends an MCS Connect Initial without negotiating, xrdp answers with a short packet and the script dies in
    asn1.lua ("data string too short", seen with -dd). Those two servers are compared with nmap's silence."""
    port, _, obs = rdp_scan
    for address in SERVERS:
        theirs = _nmap_security_layer(address, port)
        if not obs[address]["standard_rdp_security"]:
            assert theirs is None, address
            continue
        layer = {NMAP_NAMES[o["requested"]]: "SUCCESS" if o["negotiation"] == "response"
                 else f"FAILED ({o['failure']})" for o in obs[address]["offers"]}
        assert {"layer": layer, "ciphers": sorted(obs[address]["encryption_methods"]),
                "level": obs[address]["encryption_level"]} == theirs, address
