"""phi.elasticsearch and phi.kibana against STAND-INS (Debian ships neither Elasticsearch, OpenSearch nor Kibana):
the lab's own http.server handlers (lab/hosts/_standins/data_api_standins.py, loaded by path) answering as an open
Elasticsearch 7 cluster with a clinical-looking index (127.17.0.71), one asking for a login (.72), an open Kibana
(.73:5601) and one asking for a login (.74:5601). Their documents
follow the Elasticsearch / Kibana REST APIs (GET /, _cat/indices?format=json, /api/status). Compared with curl;
the CLI scan's findings exactly; misbehaving servers bounded; hypothesis on the index summary."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.phi.elasticsearch import summarise_indices
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.helpers import scan
from tests.loopback import lab_module, serving

ES_OPEN, ES_LOCKED, KB_OPEN, KB_LOCKED = "127.17.0.71", "127.17.0.72", "127.17.0.73", "127.17.0.74"
STANDINS = lab_module("lab/hosts/_standins/data_api_standins.py")     # the lab's research hosts run the same


@pytest.fixture(scope="module")
def standins() -> Iterator[None]:
    es, kibana = STANDINS.ElasticsearchStandIn, STANDINS.KibanaStandIn
    servers = [STANDINS.serve(address, port, handler, locked)
               for address, port, handler, locked in ((ES_OPEN, 9200, es, False), (ES_LOCKED, 9200, es, True),
                                                      (KB_OPEN, 5601, kibana, False), (KB_LOCKED, 5601, kibana, True))]
    with serving(servers):
        yield


def attempt(check: str, address: str, port: int, name: str = "http"):
    asset = Asset(address, services=[Service(port, name=name)])
    return execute_attempt(AttemptSpec("t", check, asset.to_dict(), port, timeout=30), RunEnv(scope=[f"{address}/32"]))


def facts(check: str, address: str, port: int) -> dict:
    r = attempt(check, address, port)
    assert (r.status, r.detail) == ("completed", "")
    [o] = r.observations
    return dict(o.data)


def test_elasticsearch_facts(standins: None) -> None:
    assert facts("phi.elasticsearch", ES_OPEN, 9200) == {
        "tls": False, "product": "elasticsearch", "version": "7.17.9", "auth_required": False, "indices": 3,
        "system_indices": 1, "documents": 1515, "clinical_indices": ["his-orders-2024", "患者主索引"],
        "clinical_truncated": False}
    assert facts("phi.elasticsearch", ES_LOCKED, 9200) == {
        "tls": False, "product": "", "version": "", "auth_required": True, "indices": None, "system_indices": None,
        "documents": None, "clinical_indices": [], "clinical_truncated": False}


def test_kibana_facts(standins: None) -> None:
    assert facts("phi.kibana", KB_OPEN, 5601) == {"tls": False, "auth_required": False, "version": "7.17.9",
                                                  "name": "kibana-ward"}
    assert facts("phi.kibana", KB_LOCKED, 5601) == {"tls": False, "auth_required": True, "version": "", "name": ""}


def _curl(address: str, port: int, path: str) -> tuple[int, object]:
    p = subprocess.run(["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", f"http://{address}:{port}{path}"],
                       capture_output=True, timeout=20)
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), json.loads(body)


def test_curl_agrees(standins: None) -> None:
    ours = facts("phi.elasticsearch", ES_OPEN, 9200)
    code, rows = _curl(ES_OPEN, 9200, "/_cat/indices?format=json&h=index,docs.count")
    patterns = knowledge()["clinical_index_names"]["patterns"]
    names = [r["index"] for r in rows if not r["index"].startswith(".")]
    assert (code, len(names), sorted(n for n in names if any(re.search(p, n, re.I) for p in patterns))) == (
        200, ours["indices"], ours["clinical_indices"])
    assert _curl(ES_LOCKED, 9200, "/")[0] == 401
    code, status = _curl(KB_OPEN, 5601, "/api/status")
    assert (code, status["version"]["number"]) == (200, facts("phi.kibana", KB_OPEN, 5601)["version"])
    assert _curl(KB_LOCKED, 5601, "/api/status")[0] == 401


def test_scan_cli_findings(standins: None, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": "search", "class": "server", "zone": "server"}
        for a, n in ((ES_OPEN, "es-open"), (ES_LOCKED, "es-locked"), (KB_OPEN, "kb-open"), (KB_LOCKED, "kb-locked"))]}))
    _sid, found = scan([ES_OPEN, ES_LOCKED, KB_OPEN, KB_LOCKED], scope=["127.17.0.0/24"], db=tmp_path / "s.db",
                       checks=["phi.elasticsearch", "phi.kibana"], inventory=str(inv))
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        (ES_OPEN, "data.search.unauthenticated-index", 9200, "critical"),
        (KB_OPEN, "data.search.kibana-without-login", 5601, "high")}


def test_not_a_cluster_is_not_applicable(standins: None) -> None:
    r = attempt("phi.elasticsearch", KB_OPEN, 5601)        # Kibana's answer to GET / is a 404 here
    assert (r.status, r.detail) == ("not_applicable", "GET / answered HTTP 404 without a cluster document")
    r = attempt("phi.kibana", ES_OPEN, 9200)
    assert (r.status, r.detail) == ("not_applicable", "GET /api/status answered HTTP 404 without Kibana's status document")


ROWS = st.lists(st.one_of(st.fixed_dictionaries({"index": st.text(max_size=30),
                                                 "docs.count": st.one_of(st.text(max_size=6), st.integers())}),
                          st.integers(), st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
                max_size=30)


@settings(max_examples=300, deadline=500)
@given(st.one_of(ROWS, st.none(), st.text(max_size=20), st.dictionaries(st.text(max_size=5), st.integers())))
def test_index_summary_of_any_json(rows: object) -> None:
    patterns = [re.compile(p, re.I) for p in knowledge()["clinical_index_names"]["patterns"]]
    s = summarise_indices(rows, patterns)
    assert s is None or (s["indices"] + s["system_indices"] == len(rows) and len(s["clinical_indices"]) <= 20)
