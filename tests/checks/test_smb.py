"""smb.negotiate, smb.shares and the rules of rules/smb.yaml against real Samba smbd on loopback: a weak file server
(SMB1 on, signing not required, a guest-readable share of fake exported reports) and its hardened twin (SMB3
only, signing mandatory, no guest, restrict anonymous = 2) that must stay silent. The scan runs through the real
CLI and SQLite file; nmap's smb-protocols / smb2-security-mode and `smbclient -N -L` are the independent peers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.checks.smb_daemons import REPORT_FILES, REPORT_FOLDERS, need_samba, start_smbd
from tests.helpers import observations, scan
from tests.loopback import pick_port

WEAK, HARDENED = "127.25.0.10", "127.25.0.11"
RULES = {r["id"] for r in yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "baselines/profiles/tcm-2024-l3/rules/smb.yaml").read_text())["rules"]}


@pytest.fixture(scope="module")
def smbds(tmp_path_factory):
    need_samba()
    port = pick_port([WEAK, HARDENED], 445)
    started = []
    try:
        for address, weak in ((WEAK, True), (HARDENED, False)):
            started.append(start_smbd(tmp_path_factory.mktemp(f"smbd-{address}"), address, port, weak=weak))
        yield port
    finally:
        for s in started:
            s.stop()


@pytest.fixture(scope="module")
def smb_scan(smbds, tmp_path_factory):
    port = smbds
    db = tmp_path_factory.mktemp("smbscan") / "scan.db"
    scan_id, found = scan([WEAK, HARDENED], scope=["127.25.0.0/24"], db=db, checks=["smb"],
                          extra=["--no-ping", "--ports", str(port)])
    obs = {(o["address"], o["check_id"]): o for o in observations(db, scan_id) if o["check_id"].startswith("smb.")}
    return port, found, obs


def test_negotiate_facts(smb_scan):
    port, _, obs = smb_scan
    weak = obs[(WEAK, "smb.negotiate")]
    assert weak["port"] == port and weak["key"] == "negotiate"
    w = weak["data"]
    assert w["dialects"] == ["NT LM 0.12", "2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]
    assert (w["smb1"], w["signing_enabled"], w["signing_required"], w["smb1_signing_required"]) == (True, True, False,
                                                                                                    False)
    assert w["refused"] == {}
    h = obs[(HARDENED, "smb.negotiate")]["data"]
    # Samba's "server min protocol = SMB3" means 3.1.1 alone (nmap agrees, see below)
    assert h["dialects"] == ["3.1.1"] and h["smb1"] is False
    assert (h["signing_enabled"], h["signing_required"], h["smb1_signing_required"]) == (True, True, None)
    assert set(h["refused"]) == {"NT LM 0.12", "2.0.2", "2.1", "3.0", "3.0.2"}
    assert {h["refused"][d] for d in ("2.0.2", "2.1", "3.0", "3.0.2")} == {"status 0xc00000bb"}  # NOT_SUPPORTED
    for d in (w, h):   # the same machine's clock: a skew of more than a second would be our arithmetic
        assert abs(d["clock_skew_seconds"]) <= 1 and d["server_time"].endswith("Z")


def test_share_facts(smb_scan):
    _, _, obs = smb_scan
    w = obs[(WEAK, "smb.shares")]["data"]
    assert (w["null_session"], w["guest_session"], w["listed_by"], w["truncated"]) == (True, True, "null", False)
    assert w["server"]["netbios_name"] == "FILESRV" and w["server"]["os"].startswith("Windows")
    assert w["shares"] == [
        {"name": "reports", "type": "disk", "special": False, "remark": "exported reports",
         "readable_by": ["null", "guest"], "files": len(REPORT_FILES), "folders": len(REPORT_FOLDERS),
         "capped": False},
        {"name": "IPC$", "type": "ipc", "special": True, "remark": "IPC Service (TCM file server)",
         "readable_by": [], "files": None, "folders": None, "capped": False}]
    h = obs[(HARDENED, "smb.shares")]["data"]
    # Samba sets up an anonymous session even with restrict anonymous = 2, then refuses it IPC$ (so no list)
    assert (h["null_session"], h["guest_session"], h["listed_by"], h["shares"]) == (True, False, None, [])
    assert h["server"]["netbios_name"] == "SECURESRV"


def test_findings_fire_on_the_weak_server_and_not_on_its_twin(smb_scan):
    port, found, _ = smb_scan
    ours = {(f["address"], f["rule_id"], f["port"]) for f in found if f["rule_id"] in RULES}
    assert ours == {(WEAK, "hardening.smb.smb1-enabled", port), (WEAK, "crypto.smb.signing-not-required", port),
                    (WEAK, "data.smb.guest-share-readable", port), (WEAK, "data.smb.anonymous-share-list", port)}
    readable = next(f for f in found if f["rule_id"] == "data.smb.guest-share-readable")
    assert readable["evidence"]["readable"] == [{"name": "reports", "by": ["null", "guest"], "files": 3, "folders": 1}]


def _nmap(address: str, port: int) -> str:
    if not shutil.which("nmap"):
        pytest.skip("needs nmap")
    return subprocess.run(["nmap", "-Pn", "-n", "-p", str(port), "--script", "smb-protocols,smb2-security-mode",
                           "--script-args", f"smbport={port}", address],
                          capture_output=True, text=True, timeout=120, check=True).stdout


NMAP_DIALECTS = {"NT LM 0.12 (SMBv1) [dangerous, but default]": "NT LM 0.12", "202": "2.0.2", "210": "2.1",
                 "300": "3.0", "302": "3.0.2", "311": "3.1.1"}


@pytest.mark.parametrize("address", [WEAK, HARDENED])
def test_nmap_agrees(smb_scan, address):
    """nmap 7.93 smb-protocols lists the dialects it could negotiate; smb2-security-mode the signing mode at the
    highest one. Ours must be the same facts."""
    port, _, obs = smb_scan
    out = _nmap(address, port)
    block = out[out.index("smb-protocols:"):]
    block = block[block.index("dialects:") + len("dialects:"):]
    dialects = []
    for line in block.splitlines()[1:]:
        text = line.lstrip("|_ ").strip()
        if not line.startswith(("|     ", "|_    ")) or not text:
            break
        dialects.append(NMAP_DIALECTS[text])
    signing = re.search(r"smb2-security-mode:\s*\n\|\s+(\d+):\s*\n\|_?\s+Message signing (.+)", out)
    assert signing is not None, out
    data = obs[(address, "smb.negotiate")]["data"]
    assert dialects == data["dialects"]
    assert NMAP_DIALECTS[signing.group(1)] == data["dialects"][-1]
    assert signing.group(2).strip() == ("enabled and required" if data["signing_required"]
                                        else "enabled but not required")


@pytest.mark.parametrize("address", [WEAK, HARDENED])
def test_smbclient_agrees(smb_scan, address):
    """`smbclient -N -L` (anonymous) lists what our null session lists, and fails where ours could not list."""
    if not shutil.which("smbclient"):
        pytest.skip("needs smbclient")
    port, _, obs = smb_scan
    p = subprocess.run(["smbclient", "-N", "-L", f"//{address}", "-p", str(port), "-g",
                        "--option=client min protocol=SMB2"], capture_output=True, text=True, timeout=60)
    listed = [line.split("|") for line in p.stdout.splitlines() if line.startswith(("Disk|", "IPC|", "Printer|"))]
    data = obs[(address, "smb.shares")]["data"]
    ours = [(s["type"], s["name"]) for s in data["shares"]]
    assert [(kind.lower().replace("printer", "printer"), name) for kind, name, *_ in listed] == ours
    if data["listed_by"] is None:
        assert p.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in p.stdout + p.stderr


def test_a_huge_share_is_counted_up_to_the_cap(tmp_path):
    """A top folder of 10 050 names: counting stops at MAX_ENTRIES (10 000) with `capped`, inside the session's byte
    budget, instead of reading the whole folder (impacket's listPath would) or failing the attempt."""
    from checks.smb import shares
    from tests.checks.hostile_loopback import context
    from tests.checks.smb_daemons import start_smbd as start

    need_samba()
    address = "127.25.0.12"
    port = pick_port([address], 445)
    big = start(tmp_path / "big", address, port, weak=True, extra_files=10050)
    try:
        [o] = shares.run(context(address, port, "microsoft-ds", "smb.shares", timeout=60))
    finally:
        big.stop()
    reports = next(s for s in o.data["shares"] if s["name"] == "reports")
    assert (reports["files"] + reports["folders"], reports["capped"]) == (shares.MAX_ENTRIES, True)
    assert reports["readable_by"] == ["null", "guest"]
