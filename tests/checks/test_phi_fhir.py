"""phi.fhir against FHIR STAND-INS (Debian ships no FHIR server), the lab's own (lab/hosts/_standins/
data_api_standins.py, loaded by path): a small http.server on 127.17.0.61 that plays
an open HAPI-style R4 server holding two fake patients, and one on .62 that plays a SMART-on-FHIR server asking
for a bearer token. Their answers follow the FHIR R4 RESTful API (CapabilityStatement at [base]/metadata,
searchset Bundle, _summary=count). Compared with curl; the CLI scan's findings exactly; the database grepped
for the planted patients."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.phi.fhir import bundle_total, capability
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.helpers import observations, scan
from tests.loopback import lab_module, serving

OPEN, SMART = "127.17.0.61", "127.17.0.62"
STANDINS = lab_module("lab/hosts/_standins/data_api_standins.py")     # the lab's research hosts run the same
NEEDLES = [b"FAKEPATIENT", b"Liuqi", b"Bajiu", b"1955-03-08", b"1948-11-30"]


@pytest.fixture(scope="module")
def fhir() -> Iterator[None]:
    servers = [STANDINS.serve(address, 8080, STANDINS.FhirStandIn, locked=smart)
               for address, smart in ((OPEN, False), (SMART, True))]
    with serving(servers):
        yield


def attempt(address: str, port: int = 8080):
    asset = Asset(address, services=[Service(port, name="http")])
    return execute_attempt(AttemptSpec("t", "phi.fhir", asset.to_dict(), port, timeout=60),
                           RunEnv(scope=[f"{address}/32"]))


def facts(address: str) -> dict:
    r = attempt(address)
    assert (r.status, r.detail) == ("completed", "")
    [o] = r.observations
    return dict(o.data)


def test_open_and_smart_facts(fhir: None) -> None:
    common = {"base": "/fhir", "tls": False, "fhir_version": "4.0.1", "software": "FHIR stand-in (tcmscan lab)"}
    assert facts(OPEN) == {**common, "security_services": [], "patient_search": {"status": 200, "total": 2}}
    assert facts(SMART) == {**common, "security_services": ["SMART-on-FHIR"],
                            "patient_search": {"status": 401, "total": None}}


def test_not_fhir_is_not_applicable() -> None:
    class Quiet(BaseHTTPRequestHandler):        # answers 501 to everything
        def log_message(self, *_args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.17.0.63", 8080), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = attempt("127.17.0.63")
    finally:
        srv.shutdown()
        srv.server_close()
    assert (r.status, r.detail) == ("not_applicable", "no FHIR CapabilityStatement at /fhir/metadata, "
                                    "/baseR4/metadata, /fhir/R4/metadata, /fhir-server/api/v4/metadata, /metadata")


def _curl(address: str, path: str) -> tuple[int, dict]:
    p = subprocess.run(["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", f"http://{address}:8080{path}"],
                       capture_output=True, timeout=20)
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), json.loads(body)


def test_curl_agrees(fhir: None) -> None:
    for address in (OPEN, SMART):
        ours = facts(address)
        code, cap = _curl(address, "/fhir/metadata")
        assert (code, cap["fhirVersion"], cap["software"]["name"]) == (200, ours["fhir_version"], ours["software"])
        code, bundle = _curl(address, "/fhir/Patient?_summary=count")
        assert (code, bundle.get("total") if code == 200 else None) == (
            ours["patient_search"]["status"], ours["patient_search"]["total"])


def test_scan_cli_findings_and_no_patient_stored(fhir: None, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": "FHIR", "class": "server", "zone": "server"}
        for a, n in ((OPEN, "fhir-open"), (SMART, "fhir-smart"))]}))
    db = tmp_path / "s.db"
    start = time.monotonic()
    sid, found = scan([OPEN, SMART], scope=["127.17.0.0/24"], db=db, checks=["phi.fhir"], inventory=str(inv))
    assert time.monotonic() - start < 300
    assert [(f["address"], f["rule_id"], f["port"], f["severity"], f["evidence"]) for f in found] == [
        (OPEN, "data.fhir.unauthenticated-patient-search", 8080, "critical",
         {"port": 8080, "base": "/fhir", "fhir_version": "4.0.1", "software": "FHIR stand-in (tcmscan lab)",
          "patients": 2})]
    obs = observations(db, sid)
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("s.db"))
    assert [n for n in NEEDLES if n in stored or n in json.dumps(obs).encode()] == []


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["resourceType", "rest", "security", "service", "coding", "code",
                                         "software", "name", "fhirVersion", "total", "x"]), c, max_size=5),
                    max_leaves=40)


@settings(max_examples=400, deadline=500)
@given(JSON, st.sampled_from(["CapabilityStatement", "Conformance", "Bundle", None]))
def test_parsers_take_any_json(doc: object, kind: str | None) -> None:
    if isinstance(doc, dict) and kind:
        doc = {**doc, "resourceType": kind}
    cap = capability(doc)
    assert cap is None or (set(cap) == {"fhir_version", "software", "security_services"}
                           and all(isinstance(c, str) for c in cap["security_services"]))
    total = bundle_total(doc)
    assert total is None or isinstance(total, int)
