"""creds.default on VNC: classic VNC authentication with the sourced default passwords (each once, within the
per-service budget), against real TigerVNC Xvnc servers on 127.16.0.60-63 whose password files TigerVNC's own
vncpasswd wrote; the result equals nmap's vnc-brute with the same passwords."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scanner.core.knowledge import knowledge
from tests.checks.vnc_servers import XVNC, start_xvnc
from tests.helpers import observations, scan
from tests.loopback import pick_port, stop_process

# address: (SecurityTypes, password, inventory entry)
SERVERS = {
    "127.16.0.60": ("VncAuth", "admin", {"class": "server", "zone": "server"}),            # a listed default
    "127.16.0.61": ("VncAuth", "Xq7-pz!9", {"class": "server", "zone": "server"}),         # not listed
    "127.16.0.62": ("None", "", {"class": "server", "zone": "server"}),                    # nothing to try
    "127.16.0.63": ("VncAuth", "1234", {"class": "medical-device", "zone": "clinical", "fragile": True,
                                        "default_credentials_allowed": True}),              # the medical rule
}


@pytest.fixture(scope="module")
def xvnc(tmp_path_factory):
    if not Path(XVNC).exists() or not shutil.which("vncpasswd"):
        pytest.skip("needs tigervnc-standalone-server and tigervnc-tools (Debian packages)")
    tmp = tmp_path_factory.mktemp("xvnc-creds")
    port = pick_port(list(SERVERS), 5900)
    procs = []
    try:
        for address, (security, password, _inv) in SERVERS.items():
            # a blacklist threshold above our 3 tries plus nmap's 3: the comparison must not lock us out
            procs.append(start_xvnc(tmp, address, port, security, password, extra=("-BlacklistThreshold", "20")))
        yield port
    finally:
        for p in procs:
            stop_process(p)


@pytest.fixture(scope="module")
def creds_scan(xvnc, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vnccreds")
    inv = tmp / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [{"address": a, "name": f"vnc{a.rsplit('.', 1)[1]}", **entry}
                                              for a, (_s, _p, entry) in SERVERS.items()]}))
    db = tmp / "scan.db"
    scan_id, found = scan(list(SERVERS), scope=["127.16.0.0/24"], db=db, checks=["creds.default"],
                          inventory=str(inv), extra=["--no-ping", "--ports", str(xvnc)])
    obs = {o["address"]: o["data"] for o in observations(db, scan_id) if o["check_id"] == "creds.default"}
    return xvnc, [f for f in found if f["port"] == xvnc], obs


def test_findings_and_facts_exact(creds_scan):
    port, found, obs = creds_scan
    assert {(f["address"], f["rule_id"], f["severity"]) for f in found} == {
        ("127.16.0.60", "accounts.default-credentials", "critical"),
        ("127.16.0.63", "medical.device.default-login", "critical"),
    }
    assert obs["127.16.0.60"] == {"service": "vnc", "accepted": True, "user": "", "entry": "vnc-admin", "tried": 2,
                                  "detail": "SecurityResult OK"}
    assert obs["127.16.0.61"] == {"service": "vnc", "accepted": False, "user": "", "entry": "", "tried": 3,
                                  "detail": "SecurityResult failed: Authentication failure"}
    assert obs["127.16.0.63"]["entry"] == "vnc-1234"
    assert "127.16.0.62" not in obs      # security type None: not applicable (vnc.security's finding)


def test_equals_nmap_vnc_brute(creds_scan, tmp_path):
    """nmap 7.93 vnc-brute with the same passwords finds the same one, and none where we found none."""
    port, _, obs = creds_scan
    passdb = tmp_path / "pass.txt"
    passdb.write_text("".join(f"{e['password']}\n" for e in knowledge()["default_credentials"]["services"]["vnc"]))
    for address in ("127.16.0.60", "127.16.0.61"):
        out = subprocess.run(["nmap", "-Pn", "-n", "-sT", "-p", str(port), "--script", "vnc-brute", "--script-args",
                              f"passdb={passdb},brute.firstonly=true", address],
                             capture_output=True, text=True, timeout=180, check=True).stdout
        found = sorted({line.split(" - ")[0].strip(" |_") for line in out.splitlines() if "Valid credentials" in line})
        want = ([e["password"] for e in knowledge()["default_credentials"]["services"]["vnc"]
                 if e["id"] == obs[address]["entry"]] if obs[address]["accepted"] else [])
        assert found == want, out
