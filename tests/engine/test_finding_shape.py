"""One finding shape everywhere (issue 12): the CLI's JSON and CSV, the report's JSON, CSV and SARIF, and the
webhook all carry the keys of scanner/core/output.py, and the risk computed at evaluation is what every one
of them shows, until the scan is evaluated again. Driven through the real code on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from reports.formats import render_csv, render_sarif, validate_report, validate_sarif
from reports.html import render_html
from reports.model import build
from scanner.assess import grading
from scanner.assess.baseline import load_profile
from scanner.assess.evaluate import diff_findings
from scanner.core.models import Asset, AttemptResult, Observation, Service, attempt_id
from scanner.core.output import FINDING_BRIEF_FIELDS, FINDING_CSV_FIELDS, FINDING_FIELDS
from scanner.engine.scan import evaluate_stored
from scanner.schedule.jobs import NotifyConfig, Webhook
from scanner.schedule.notify import Change, deliver
from scanner.store import Store
from tests.helpers import tcmscan
from tests.schedule.servers import WebhookReceiver

ADDRESS = "10.0.0.5"
NAME = "=HIS<main>"                       # a formula and markup: the CSV must neutralise it
NOW = "2026-11-21T00:00:00+00:00"
S1, S2 = "s20261120-000000-aaaa", "s20261121-000000-bbbb"
TELNET_RISK = {"A": 5, "T": 4, "V": 4, "L": 4.0, "F": 4.47, "R": 17.89, "level": 4, "level_zh": "高",
               "level_en": "high", "cell": [4, 4],
               "inputs": {"A": "role HIS → criticality 5", "T": "max(zone server 3, vantage user 4) = 4",
                          "V": "severity high → 4"},
               "formula": "A=5, T=4, V=4; L=√(T·V)=4.00, F=√(A·V)=4.47, R=L·F=17.89"}


def add_scan(store: Store, scan_id: str, created: str, ports: list[tuple[int, str]]) -> None:
    """A finished scan of one HIS server as the engine leaves it (ports.open attempts and observations),
    then judged by the engine's own evaluation step."""
    profile = load_profile()
    store.create_scan({
        "id": scan_id, "created": created, "started": created, "finished": created, "status": "done",
        "phase": "done", "targets": [ADDRESS], "scope": [f"{ADDRESS}/32"], "exclude": [],
        "settings": {"vantage": "user"}, "inventory": {}, "profile_id": profile.id,
        "profile_version": profile.version, "profile_sha256": profile.sha256, "tool_version": "test",
        "check_versions": {"ports.open": "1.0"}, "error": None})
    store.save_assets(scan_id, [Asset(ADDRESS, name=NAME, role="HIS", zone="server", criticality=5, cls="server",
                                      services=[Service(p, name=n) for p, n in ports])])
    for port, name in ports:
        aid = attempt_id(scan_id, "ports.open", ADDRESS, port)
        store.add_pending(scan_id, [(aid, "ports.open", "1.0", ADDRESS, port)])
        data = {"port": port, "proto": "tcp", "name": name, "banner": "", "product": "", "version": "",
                "tunnel": ""}
        store.record_attempt(scan_id, AttemptResult(aid, "ports.open", ADDRESS, port, "completed", observations=[
            Observation("ports.open", ADDRESS, port, "service", data)]), "1.0", created)
    evaluate_stored(scan_id, store, profile, now=NOW)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    store = Store(path)
    add_scan(store, S1, "2026-11-20T00:00:00+00:00", [(23, "telnet")])
    add_scan(store, S2, "2026-11-21T00:00:00+00:00", [(23, "telnet"), (6379, "redis")])
    store.close()
    return path


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_every_format_carries_the_one_shape(db):
    cli = json.loads(tcmscan("findings", S2, "--format", "json", db=db, check=True).stdout)
    assert {(f["rule_id"], f["port"]) for f in cli} == {
        ("crypto.cleartext.telnet", 23), ("hardening.risky-port", 23), ("hardening.risky-port", 6379)}
    assert all(list(f) == list(FINDING_FIELDS) for f in cli)
    telnet = next(f for f in cli if f["rule_id"] == "crypto.cleartext.telnet")
    assert (telnet["address"], telnet["risk"]) == (ADDRESS, TELNET_RISK)
    by_fp = {f["fingerprint"]: f for f in cli}

    store = Store(db)
    doc = build(store, S2, now=NOW)
    assert validate_report(doc) == []
    # the report's findings are the CLI's findings, key for key and value for value
    assert {f["fingerprint"]: f for f in doc["findings"]} == by_fp
    assert all(list(f) == list(FINDING_FIELDS) for f in doc["findings"])
    # its diff lists the short form: a projection of the same dicts
    assert doc["diff"]["previous_scan_id"] == S1
    briefs = [b for kind in ("new", "fixed", "persisting", "waived", "not_reassessed") for b in doc["diff"][kind]]
    assert {(b["rule_id"], b["port"]) for b in doc["diff"]["new"]} == {("hardening.risky-port", 6379)}
    assert briefs and all(list(b) == list(FINDING_BRIEF_FIELDS) for b in briefs)
    assert all(b == {k: by_fp[b["fingerprint"]][k] for k in FINDING_BRIEF_FIELDS} for b in briefs)

    # one CSV: the same header and the same rows from the CLI and from the report
    cli_csv = csv_rows(tcmscan("findings", S2, "--format", "csv", db=db, check=True).stdout)
    report_csv = csv_rows(render_csv(doc))
    assert cli_csv[0] == report_csv[0] == list(FINDING_CSV_FIELDS)
    assert sorted(cli_csv[1:]) == sorted(report_csv[1:])
    row = next(r for r in (dict(zip(cli_csv[0], r, strict=True)) for r in cli_csv[1:])
               if r["rule_id"] == "crypto.cleartext.telnet")
    assert (row["address"], row["host_name"], row["port"], row["risk_R"], row["L"], row["F"], row["risk_level"]) == (
        ADDRESS, "'" + NAME, "23", "17.89", "4.00", "4.47", "high")

    sarif = json.loads(render_sarif(doc))
    assert validate_sarif(sarif) == []
    results = sarif["runs"][0]["results"]
    assert {r["partialFingerprints"]["tcmscan/v1"]: r["properties"] for r in results} == by_fp

    rx = WebhookReceiver()
    try:
        d = diff_findings(store.findings(S1), store.findings(S2), store.rule_results(S2))
        change = Change("nightly", S2, S1, "done", new=d["new"], fixed=d["fixed"], min_severity="info")
        (sent,) = deliver(change, NotifyConfig(webhook=[Webhook(url=rx.url)], retries=0))
        assert sent.ok, sent.error
        payload = rx.requests[0]["json"]
    finally:
        rx.close()
    assert [list(f) for f in payload["new"]] == [list(FINDING_BRIEF_FIELDS)]
    assert payload["new"] == [{k: by_fp[payload["new"][0]["fingerprint"]][k] for k in FINDING_BRIEF_FIELDS}]
    assert payload["new"][0]["port"] == 6379
    store.close()


def test_a_report_renders_the_stored_risk_until_the_scan_is_evaluated_again(db, monkeypatch):
    store = Store(db)
    assert next(f.risk for f in store.findings(S2) if f.rule_id == "crypto.cleartext.telnet") == TELNET_RISK
    # the risk model changes after evaluation: a high severity is now worth V=5
    changed = json.loads(json.dumps(grading.model()))
    changed["vuln_by_severity"]["high"] = 5
    monkeypatch.setattr(grading, "model", lambda: changed)

    def regrade(*_a, **_k):
        raise AssertionError("the report re-graded a finding that has its risk stored")

    with monkeypatch.context() as m:
        m.setattr(grading, "grade_finding", regrade)
        doc = build(store, S2, now=NOW)
        html = render_html(doc, "en")
    telnet = next(f for f in doc["findings"] if f["rule_id"] == "crypto.cleartext.telnet")
    assert telnet["risk"] == TELNET_RISK
    host = doc["hosts"][0]
    assert (host["grade"]["level"], host["grade"]["max_risk"]) == (4, 17.89)
    assert (host["asset_value"], host["threat"]) == ({"value": 5, "from": "role HIS → criticality 5"},
                                                     {"value": 4, "from": "max(zone server 3, vantage user 4) = 4"})
    assert doc["summary"]["open_by_level"] == {"5": 0, "4": 1, "3": 2, "2": 0, "1": 0}
    assert "R=L·F=17.89" in html and "R=L·F=22.36" not in html

    # `tcmscan evaluate` (the same evaluate_stored) grades again with the model as it is now
    evaluate_stored(S2, store, load_profile(), now=NOW)
    doc = build(store, S2, now=NOW)
    telnet = next(f for f in doc["findings"] if f["rule_id"] == "crypto.cleartext.telnet")
    assert (telnet["risk"]["V"], telnet["risk"]["R"], telnet["risk"]["level_en"], telnet["risk"]["cell"]) == (
        5, 22.36, "very high", [4, 5])
    assert telnet["risk"]["inputs"]["V"] == "severity high → 5"
    assert doc["summary"]["open_by_level"] == {"5": 1, "4": 0, "3": 2, "2": 0, "1": 0}
    store.close()
