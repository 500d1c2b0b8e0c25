"""vnc.security and the rules hardening.vnc-no-auth / crypto.vnc-weak-auth against real TigerVNC Xvnc servers on
127.16.0.x (an imaging workstation offering None, VNC authentication, VNC authentication inside TLS, None beside
VNC authentication, and a hardened X509Plain-only twin that must stay silent), through the real CLI; our facts
equal nmap's vnc-info on every one of them."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.checks.vnc_servers import XVNC, start_xvnc
from tests.helpers import observations, scan
from tests.loopback import pick_port, stop_process

# address: (TigerVNC SecurityTypes, inventory class, fragile)
SERVERS = {
    "127.16.0.10": ("None", "medical-device", True),            # imaging workstation: no password at all
    "127.16.0.11": ("VncAuth", "workstation", False),            # classic VNC password, no TLS
    "127.16.0.12": ("X509Plain", "server", False),               # hardened twin: user/password inside TLS
    "127.16.0.13": ("TLSVnc,X509Plain", "server", False),        # VNC password inside anonymous TLS
    "127.16.0.14": ("None,VncAuth", "server", False),            # None beside a password
}


@pytest.fixture(scope="module")
def xvnc(tmp_path_factory):
    if not Path(XVNC).exists():
        pytest.skip("needs tigervnc-standalone-server (Debian package)")
    tmp = tmp_path_factory.mktemp("xvnc")
    port = pick_port(list(SERVERS), 5900)
    procs = []
    try:
        for address, (security, _cls, _fragile) in SERVERS.items():
            procs.append(start_xvnc(tmp, address, port, security))
        yield port
    finally:
        for p in procs:
            stop_process(p)


@pytest.fixture(scope="module")
def vnc_scan(xvnc, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vncscan")
    inv = tmp / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": f"vnc{a.rsplit('.', 1)[1]}", "class": cls, "fragile": fragile,
         "zone": "clinical" if cls == "medical-device" else "server"}
        for a, (_s, cls, fragile) in SERVERS.items()]}))
    db = tmp / "scan.db"
    scan_id, found = scan(list(SERVERS), scope=["127.16.0.0/24"], db=db, checks=["vnc"], inventory=str(inv),
                          extra=["--no-ping", "--ports", str(xvnc)])
    obs = {o["address"]: o["data"] for o in observations(db, scan_id) if o["check_id"] == "vnc.security"}
    return xvnc, [f for f in found if f["port"] == xvnc], obs


def test_findings_exact(vnc_scan):
    port, found, _ = vnc_scan
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        ("127.16.0.10", "hardening.vnc-no-auth", port, "critical"),    # medical-class: critical
        ("127.16.0.11", "crypto.vnc-weak-auth", port, "medium"),
        ("127.16.0.13", "crypto.vnc-weak-auth", port, "medium"),
        ("127.16.0.14", "hardening.vnc-no-auth", port, "high"),
    }
    ev = {(f["address"], f["rule_id"]): f["evidence"] for f in found}
    assert ev[("127.16.0.10", "hardening.vnc-no-auth")] == {"version": "3.8", "types": ["None"], "vencrypt": []}
    assert ev[("127.16.0.13", "crypto.vnc-weak-auth")] == {
        "version": "3.8", "types": ["VeNCrypt"], "vencrypt": ["TLSVnc", "X509Plain"]}


def test_observations(vnc_scan):
    _, _, obs = vnc_scan
    common = {"banner": "RFB 003.008", "version": "3.8", "client_version": "3.8", "server_chose": False,
              "refused": "", "vencrypt_error": ""}
    assert obs["127.16.0.10"] == {**common, "types": [1], "type_names": ["None"], "vencrypt_subtypes": [],
                                  "vencrypt_names": []}
    assert obs["127.16.0.11"] == {**common, "types": [2], "type_names": ["VNC Authentication"],
                                  "vencrypt_subtypes": [], "vencrypt_names": []}
    assert obs["127.16.0.12"] == {**common, "types": [19], "type_names": ["VeNCrypt"],
                                  "vencrypt_subtypes": [262], "vencrypt_names": ["X509Plain"]}
    assert obs["127.16.0.13"] == {**common, "types": [19], "type_names": ["VeNCrypt"],
                                  "vencrypt_subtypes": [258, 262], "vencrypt_names": ["TLSVnc", "X509Plain"]}
    assert obs["127.16.0.14"] == {**common, "types": [1, 2], "type_names": ["None", "VNC Authentication"],
                                  "vencrypt_subtypes": [], "vencrypt_names": []}


def _nmap_vnc_info(address: str, port: int) -> dict:
    out = subprocess.run(["nmap", "-Pn", "-n", "-sT", "-p", str(port), "--script", "vnc-info", "-oX", "-",
                          address], capture_output=True, text=True, timeout=120, check=True).stdout
    script = ET.fromstring(out).find(".//script[@id='vnc-info']")
    assert script is not None, out

    def numbers(key: str) -> list[int]:
        table = script.find(f"table[@key='{key}']")
        return [] if table is None else [int(t.find("elem[@key='type']").text) for t in table.findall("table")]

    return {"version": script.find("elem[@key='Protocol version']").text,
            "types": numbers("Security types"), "vencrypt_subtypes": numbers("VeNCrypt auth subtypes"),
            "no_auth_warning": script.find("elem[@key='WARNING']") is not None}


def test_facts_equal_nmap_vnc_info(vnc_scan):
    """nmap 7.93's vnc-info reads the same opening; its version, security types and VeNCrypt sub-types, in the
    server's order, equal ours. Its 'does not require authentication' warning equals our no-auth finding except
    where nmap does not look: it checks type 1 and VeNCrypt TLSNone, not X509None (none of these servers)."""
    port, found, obs = vnc_scan
    no_auth = {f["address"] for f in found if f["rule_id"] == "hardening.vnc-no-auth"}
    for address in SERVERS:
        theirs = _nmap_vnc_info(address, port)
        ours = obs[address]
        assert (ours["version"], ours["types"], ours["vencrypt_subtypes"]) == \
            (theirs["version"], theirs["types"], theirs["vencrypt_subtypes"]), address
        assert (address in no_auth) == theirs["no_auth_warning"], address
