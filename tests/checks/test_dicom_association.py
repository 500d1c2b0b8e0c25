"""dicom.association and dicom.cfind against real pynetdicom SCPs and misbehaving raw peers on loopback.

Loopback addresses 127.77.7.x are ours (other families use other 127.77.x.y); port 104 as on a real PACS.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind, Verification

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.helpers import observations, scan
from tests.loopback import Scripted

OLD_DCMTK_UID = "1.2.276.0.7230010.3.0.3.6.2"
OLD_DCMTK_NAME = "OFFIS_DCMTK_362"
SYNTHETIC = [("TEST^ALPHA", "T001", "19500101", "F"), ("TEST^BETA", "T002", "19620517", "M")]


def _find_handler(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    for name, pid, birth, sex in SYNTHETIC:
        ds = Dataset()
        ds.QueryRetrieveLevel = "PATIENT"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = name, pid, birth, sex
        yield 0xFF00, ds


def start_scp(address: str, port: int, *, old_identity: bool = False, strict_called: str = "",
              allowed_calling: list[str] | None = None):
    ae = AE(ae_title=strict_called or "PACS")
    ae.require_called_aet = bool(strict_called)
    ae.require_calling_aet = allowed_calling or []
    if old_identity:
        ae.implementation_class_uid = OLD_DCMTK_UID
        ae.implementation_version_name = OLD_DCMTK_NAME
    ae.add_supported_context(Verification)
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
    return ae.start_server((address, port), block=False, evt_handlers=[(evt.EVT_C_FIND, _find_handler)])


def _attempt(check_id: str, address: str, port: int, *, timeout: float = 10, fragile: bool = True,
             extra: dict | None = None):
    asset = Asset(address, cls="medical-device", fragile=fragile, services=[Service(port, name="dicom")],
                  extra=extra or {})
    env = RunEnv(scope=[f"{address}/32"])
    spec = AttemptSpec("t", check_id, asset.to_dict(), port, timeout=timeout, safe_mode=fragile)
    return execute_attempt(spec, env), env


# ------------------------------------------------------------------------------------------------ good peers

def test_permissive_old_dcmtk_scp() -> None:
    srv = start_scp("127.77.7.20", 104, old_identity=True)
    try:
        r, _ = _attempt("dicom.association", "127.77.7.20", 104)
        assert r.status == "completed", r.detail
        d = r.observations[0].data
        assert (d["result"], d["any_called_ae"], d["any_calling_ae"], d["echo_status"], d["tls"]) == \
            ("accepted", True, True, 0, False)
        assert d["implementation_class_uid"] == OLD_DCMTK_UID
        assert d["implementation_version_name"] == OLD_DCMTK_NAME
        assert d["implementation"] == {"product": "DCMTK", "version": "3.6.2", "from": "implementation_class_uid"}
        assert [a["called_ae_random"] for a in d["attempts"]] == [True]

        r, _ = _attempt("dicom.cfind", "127.77.7.20", 104)
        assert r.status == "completed", r.detail
        d = r.observations[0].data
        assert d == {"query_model": "PatientRoot", "query_level": "PATIENT", "query": "PatientID=*",
                     "association": "accepted", "called_ae_random": True, "context_accepted": True,
                     "status": "pending", "status_code": 0xFF00, "results_read": 1, "cancelled": True,
                     "phi_exposed": True, "attribute_count": 5,
                     "attribute_keywords": ["PatientBirthDate", "PatientID", "PatientName", "PatientSex",
                                            "QueryRetrieveLevel"]}
        # never a value: no synthetic name, id or birth date anywhere in the observation
        text = repr(r.observations)
        assert not any(v in text for p in SYNTHETIC for v in p if len(v) > 1)
    finally:
        srv.shutdown()


def test_strict_scp_rejects_random_called_ae_then_inventory_title() -> None:
    srv = start_scp("127.77.7.24", 104, strict_called="STRICTPACS")
    try:
        r, _ = _attempt("dicom.association", "127.77.7.24", 104)
        d = r.observations[0].data
        assert (r.status, d["result"], d["any_called_ae"], d["any_calling_ae"]) == ("completed", "rejected", False,
                                                                                     None)
        assert d["attempts"][0]["reject"] == {"result": 1, "source": 1, "reason": 7,
                                              "meaning": "called AE title not recognized"}
        # with the inventory's AE title: a second association (random calling AE) is accepted
        r, _ = _attempt("dicom.association", "127.77.7.24", 104, extra={"dicom": {"ae_title": "STRICTPACS"}})
        d = r.observations[0].data
        assert (d["result"], d["any_called_ae"], d["any_calling_ae"], d["echo_ok"]) == ("accepted", False, True, True)
        assert [(a["called_ae"], a["result"]) for a in d["attempts"]][1] == ("STRICTPACS", "accepted")
        assert d["implementation"]["product"] == "pynetdicom"
        # C-FIND without the AE title: rejected, so no PHI
        r, _ = _attempt("dicom.cfind", "127.77.7.24", 104)
        d = r.observations[0].data
        assert (d["association"], d["phi_exposed"], d["attribute_count"], d["results_read"]) == \
            ("rejected", False, 0, 0)
    finally:
        srv.shutdown()


# ------------------------------------------------------------------------------------------------ bad peers

AC_HEAD = struct.pack(">BBI", 2, 0, 100 * 1024 * 1024)          # announces a 100 MB A-ASSOCIATE-AC


def _send(data: bytes, then_wait: float = 0.0) -> Callable[[socket.socket, int, bytes], None]:
    def reply(conn: socket.socket, _n: int, _rq: bytes) -> None:
        conn.sendall(data)
        time.sleep(then_wait)
    return reply


@pytest.mark.parametrize("name,reply,expect", [
    ("reject", _send(struct.pack(">BBIBBBB", 3, 0, 4, 0, 1, 1, 3)), ("completed", "", "rejected")),
    ("abort", _send(struct.pack(">BBIBBBB", 7, 0, 4, 0, 0, 2, 0)), ("error", "protocol", "aborted")),
    ("malformed", _send(struct.pack(">BBI", 2, 0, 10) + b"\xff" * 10), ("error", "protocol", "")),
    ("huge-pdu", _send(AC_HEAD + b"\x00" * 4096, then_wait=3), ("error", "protocol", "refused unread")),
    ("silent", lambda conn, _n, _rq: time.sleep(6), ("error", "timeout", "no answer")),
])
def test_bad_dicom_peers_bounded(name: str, reply, expect) -> None:
    # a misbehaving DICOM peer: reads the A-ASSOCIATE-RQ, then answers with `reply`
    peer = Scripted(reply, "127.77.7.25", 104, read_first=65536, timeout=2)
    try:
        start = time.monotonic()
        r, env = _attempt("dicom.association", "127.77.7.25", 104, timeout=4)
        took = time.monotonic() - start
        status, reason, text = expect
        assert (r.status, r.reason) == (status, reason), r.detail
        assert text in (r.detail + repr([o.data for o in r.observations]))
        assert took < 9, f"{name} took {took:.1f} s"
        assert peer.connections == 1      # one connection, no retry storm
        if name == "reject":
            d = r.observations[0].data
            assert (d["any_called_ae"], d["any_calling_ae"]) == (None, False)   # reason 3: calling AE refused
    finally:
        peer.close()


# ------------------------------------------------------------------------------------------------ end to end

def test_scan_cli_medical_findings(tmp_path: Path) -> None:
    """Through the real CLI with an inventory: fragile path, rules, exact findings, no PHI in the DB."""
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": "127.77.7.20", "name": "pacs", "role": "PACS", "class": "medical-device", "zone": "clinical",
         "fragile": True},
        {"address": "127.77.7.21", "name": "modality", "role": "modality", "class": "medical-device",
         "zone": "clinical", "fragile": True, "mds2": {"TXCF": "no"}},
    ]}))
    a = start_scp("127.77.7.20", 104)
    b = start_scp("127.77.7.21", 104, old_identity=True)
    db = tmp_path / "scan.db"
    try:
        _sid, found = scan(["127.77.7.20", "127.77.7.21"], scope=["127.77.7.0/24"], db=db, checks=["dicom"],
                           inventory=str(inv))
    finally:
        a.shutdown()
        b.shutdown()
    got = {(f["address"], f["rule_id"], f["port"]) for f in found}
    assert got == {
        ("127.77.7.20", "medical.dicom.any-ae-title", 104), ("127.77.7.20", "medical.dicom.cfind-phi", 104),
        ("127.77.7.20", "medical.dicom.plaintext", 104),
        ("127.77.7.21", "medical.dicom.any-ae-title", 104), ("127.77.7.21", "medical.dicom.cfind-phi", 104),
        ("127.77.7.21", "medical.dicom.unsegmented", 104), ("127.77.7.21", "medical.dicom.vulnerable-version", 104),
    }
    vuln = next(f for f in found if f["rule_id"] == "medical.dicom.vulnerable-version")
    assert vuln["evidence"]["cves"] == ["CVE-2022-2119", "CVE-2022-2120", "CVE-2022-2121"]
    assert (vuln["evidence"]["max_cvss"], vuln["severity"]) == (7.5, "high")   # graded by CVSS
    assert vuln["capability"] == "CSUP"
    raw = db.read_bytes()
    assert b"TEST^ALPHA" not in raw and b"19500101" not in raw and b"T001" not in raw
    obs = observations(db)
    assert {(o["check_id"], o["key"]) for o in obs if o["check_id"].startswith("dicom")} == {
        ("dicom.association", "association"), ("dicom.cfind", "cfind")}


def test_discovery_probe_identifies_dicom_and_mllp() -> None:
    from scanner.sdk.probes import Identified, identify
    from tests.checks.test_hl7_mllp import MllpPeer

    srv = start_scp("127.77.7.26", 40104, old_identity=True)
    peer = MllpPeer("127.77.7.26", 40575, "ack")
    try:
        assert identify("127.77.7.26", 40104) == Identified("dicom", OLD_DCMTK_NAME, OLD_DCMTK_UID,
                                                           "A-ASSOCIATE-AC")
        assert identify("127.77.7.26", 40575, expected="hl7-mllp") == Identified("hl7-mllp", "LABENGINE", "2.5",
                                                                                "MSA AA")
        assert identify("127.77.7.26", 40576, timeout=1) is None      # nothing listening
    finally:
        srv.shutdown()
        peer.close()
