"""phi.orthanc (and creds.default's Orthanc entry) against Debian's Orthanc 1.10 with its DICOMweb plugin on
127.17.0.x: authentication disabled; enabled with the well-known orthanc/orthanc account; enabled with a strong
account (the twin). Each holds one planted study of a fake patient. Compared with curl; the CLI scan's findings
exactly, and a grep of the database for the planted patient. Orthanc cannot be told an address to listen on:
it runs under tests/checks/bind_loopback.c (LD_PRELOAD), and the test checks its listening sockets."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.phi.orthanc import qido_summary
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.helpers import observations, scan
from tests.loopback import Scripted, wait_port

HERE = Path(__file__).parent
OPEN, DEFAULT, LOCKED = "127.17.0.51", "127.17.0.52", "127.17.0.53"
USERS = {OPEN: None, DEFAULT: ("orthanc", "orthanc"), LOCKED: ("pacsadmin", "Twin-Orthanc-Secret-42")}
PATIENT, PATIENT_ID = "FAKEPATIENT^WANG^ORTHANC", "ORTHANC-TEST-0042"
NEEDLES = [b"FAKEPATIENT", b"WANG^ORTHANC", PATIENT_ID.encode(), b"19600229"]
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def _instance() -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"          # Secondary Capture
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT, PATIENT_ID, "19600229"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.Modality, ds.AccessionNumber = "20240101", "OT", "ACC-TEST-1"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _request(address: str, path: str, data: bytes | None = None) -> bytes:
    req = urllib.request.Request(f"http://{address}:8042{path}", data=data, method="POST" if data else "GET")
    if USERS[address]:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(USERS[address]).encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def _listening(pid: int) -> set[str]:
    out = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True).stdout
    return {line.split()[4] for line in out.splitlines() if f"pid={pid}," in line}


@pytest.fixture(scope="module")
def orthancs() -> Iterator[None]:
    missing = [b for b in ("Orthanc", "gcc", "curl", "runuser", "ss") if not shutil.which(b)]
    if missing or not PLUGIN.exists():
        pytest.skip(f"needs {', '.join(missing) or PLUGIN} (apt-get install orthanc orthanc-dicomweb gcc curl)")
    tmp = Path(tempfile.mkdtemp(prefix="tcmscan-orthanc-"))
    tmp.chmod(0o755)
    shim = tmp / "bind_loopback.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(HERE / "bind_loopback.c"), "-ldl"],
                   check=True, capture_output=True)
    procs: list[subprocess.Popen] = []
    try:
        for address, user in USERS.items():
            store = tmp / address
            store.mkdir()
            shutil.chown(store, "nobody")
            conf = {"Name": "TCMSCAN-TEST-PACS", "StorageDirectory": str(store), "IndexDirectory": str(store),
                    "Plugins": [str(PLUGIN)], "HttpPort": 8042, "DicomServerEnabled": False,
                    "WebDavEnabled": False, "RemoteAccessAllowed": True, "AuthenticationEnabled": bool(user),
                    "RegisteredUsers": {user[0]: user[1]} if user else {},
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
            path = tmp / f"{address}.json"
            path.write_text(json.dumps(conf))
            path.chmod(0o644)
            p = subprocess.Popen(["runuser", "-u", "nobody", "--", "Orthanc", str(path)],
                                 env={"LD_PRELOAD": str(shim), "TCMSCAN_BIND_ADDRESS": address, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(address, 8042, timeout=30)
            orthanc_pid = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            for pid in [p.pid, *map(int, orthanc_pid)]:
                heard = _listening(pid)
                assert heard <= {f"{address}:8042"}, f"Orthanc listens beyond its loopback address: {heard}"
            _request(address, "/instances", _instance())
        yield
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def attempt(address: str, port: int = 8042, timeout: float = 40):
    asset = Asset(address, services=[Service(port, name="http")])
    spec = AttemptSpec("t", "phi.orthanc", asset.to_dict(), port, timeout=timeout)
    return execute_attempt(spec, RunEnv(scope=[f"{address}/32"]))


def facts(address: str) -> dict:
    r = attempt(address)
    assert (r.status, r.detail) == ("completed", "")
    [o] = r.observations
    assert o.key == "orthanc"
    return dict(o.data)


def test_open_orthanc_facts(orthancs: None) -> None:
    assert facts(OPEN) == {
        "tls": False, "auth_required": False, "version": "1.10.1", "api_version": 16, "patients_total": 1,
        "studies_total": 1, "instances_total": 1, "patients_listed": 1,
        "dicomweb": {"status": 200, "studies_returned": 1, "phi_exposed": True, "attribute_keywords": [
            "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries",
            "PatientBirthDate", "PatientID", "PatientName", "RetrieveURL", "SpecificCharacterSet", "StudyDate",
            "StudyInstanceUID"]}}


def test_locked_orthancs_facts(orthancs: None) -> None:
    for address in (DEFAULT, LOCKED):
        assert facts(address) == {
            "tls": False, "auth_required": True, "version": "", "api_version": None, "patients_total": None,
            "studies_total": None, "instances_total": None, "patients_listed": None, "dicomweb": None}, address


def _curl(address: str, path: str, *extra: str) -> tuple[int, bytes]:
    p = subprocess.run(["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", *extra,
                        f"http://{address}:8042{path}"], capture_output=True, timeout=20)
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


def test_curl_agrees(orthancs: None) -> None:
    ours = facts(OPEN)
    code, system = _curl(OPEN, "/system")
    assert (code, json.loads(system)["Version"], json.loads(system)["ApiVersion"]) == (
        200, ours["version"], ours["api_version"])
    code, stats = _curl(OPEN, "/statistics")
    assert (code, json.loads(stats)["CountPatients"], json.loads(stats)["CountStudies"]) == (
        200, ours["patients_total"], ours["studies_total"])
    code, studies = _curl(OPEN, "/dicom-web/studies?limit=1", "-H", "Accept: application/dicom+json")
    assert (code, len(json.loads(studies))) == (200, ours["dicomweb"]["studies_returned"])
    for address in (DEFAULT, LOCKED):
        assert _curl(address, "/system")[0] == 401
        assert _curl(address, "/dicom-web/studies")[0] == 401
    # the default account: curl gets in with orthanc/orthanc, and not into the twin with it
    assert _curl(DEFAULT, "/statistics", "-u", "orthanc:orthanc")[0] == 200
    assert _curl(LOCKED, "/statistics", "-u", "orthanc:orthanc")[0] == 401


def test_scan_cli_findings_and_no_patient_stored(orthancs: None, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": "PACS", "class": "server", "zone": "server"}
        for a, n in ((OPEN, "pacs-open"), (DEFAULT, "pacs-default"), (LOCKED, "pacs-locked"))]}))
    db = tmp_path / "s.db"
    sid, found = scan([OPEN, DEFAULT, LOCKED], scope=["127.17.0.0/24"], db=db, checks=["phi", "creds.default"],
                      inventory=str(inv))
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        (OPEN, "data.orthanc.unauthenticated-api", 8042, "critical"),
        (OPEN, "data.dicomweb.unauthenticated-qido", 8042, "critical"),
        (DEFAULT, "accounts.default-credentials", 8042, "critical")}
    cred = next(f for f in found if f["rule_id"] == "accounts.default-credentials")
    assert (cred["evidence"]["entry"], cred["evidence"]["user"]) == ("http-orthanc-orthanc", "orthanc")
    obs = observations(db, sid)
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("s.db"))
    assert [n for n in NEEDLES if n in stored or n in json.dumps(obs).encode()] == []


# ------------------------------------------------------------------------------------------ bad servers

def _fake(address: str, behaviour: str) -> Scripted:
    system = json.dumps({"ApiVersion": 16, "DicomAet": "FAKE", "Version": "9.9"}).encode()

    def talk(conn, _n, first: bytes) -> None:
        path = first.split(b" ", 2)[1] if first.count(b" ") >= 2 else b"/"
        if path == b"/system" and behaviour != "garbage":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(system), system))
        elif behaviour == "garbage":
            conn.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        elif behaviour == "endless":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
            end = time.monotonic() + 10
            while time.monotonic() < end:
                conn.sendall(b'"0123456789abcdef",' * 4096)
        elif behaviour == "silent":
            time.sleep(10)
    return Scripted(talk, address, 8042, read_first=4096, timeout=12)


def test_misbehaving_servers_bounded() -> None:
    cases = {
        "garbage": ("error", "protocol", "not an HTTP status line"),
        "silent": ("error", "timeout", "no HTTP answer to GET /statistics within 8 s"),
        "endless": ("error", "protocol", "Orthanc answered /system but neither /statistics nor /patients"),
    }
    for i, (mode, (status, reason, detail)) in enumerate(cases.items()):
        address = f"127.17.0.{100 + i}"
        peer = _fake(address, mode)
        try:
            start = time.monotonic()
            r = attempt(address, timeout=40)
            took = time.monotonic() - start
        finally:
            peer.close()
        assert (r.status, r.reason, r.detail[:len(detail)]) == (status, reason, detail), (mode, r.detail)
        assert r.observations == [] and took < 36, (mode, took)


@settings(max_examples=300, deadline=500)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=30))
def test_qido_summary_of_any_json(answer: object) -> None:
    s = qido_summary(answer)
    assert set(s) == {"studies_returned", "attribute_keywords", "phi_exposed"}
    assert isinstance(s["phi_exposed"], bool)


def test_orthanc_default_account_only_on_orthancs_realm() -> None:
    """creds.default's http-basic list: the Orthanc entry first on Orthanc's realm, never elsewhere."""
    from checks.creds import _forms as forms
    from scanner.core.knowledge import knowledge

    table = knowledge()["default_credentials"]
    entries, limit = table["services"]["http-basic"], table["max_per_service"]
    assert [e["id"] for e in forms.choose(entries, "Orthanc Secure Area", limit)] == [
        "http-orthanc-orthanc", "http-admin-admin", "http-admin-password"]
    assert [e["id"] for e in forms.choose(entries, "Infusion Pump Console", limit)] == [
        "http-admin-admin", "http-admin-password", "http-admin-1234"]
