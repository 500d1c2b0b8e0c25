"""The report document: one plain dict built from a stored scan, from which every format is rendered.

It is also the JSON format (schema: reports/schema/report.schema.json), so the HTML, PDF, CSV and SARIF never
compute anything the JSON does not show. Both languages' texts are kept; a renderer picks one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from scanner import __version__
from scanner.assess.baseline import Profile, load_profile
from scanner.assess.evaluate import diff_findings
from scanner.assess.grading import (
    ScanGrade,
    asset_value,
    grade_scan,
    model,
    scan_vantage,
    stored_findings,
    threat,
)
from scanner.core.errors import TcmscanError
from scanner.core.models import Finding
from scanner.core.output import finding_brief, finding_json
from scanner.core.vocab import SEVERITIES, VERDICTS
from scanner.store import Store

SCHEMA_ID = "https://tcmscan.invalid/schema/report.schema.json"
FORMAT_VERSION = "2.0"   # 2.0: findings in the one shape (address, title_zh/title_en, risk.cell)
TREND_SCANS = 10


def findings_digest(findings: list[Finding]) -> str:
    """sha256 over the canonical JSON of (fingerprint, severity, status), sorted: what an auditor compares."""
    rows = sorted([f.fingerprint, f.severity, f.status] for f in findings)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


def _profile_for(scan: dict[str, Any]) -> tuple[Profile | None, str]:
    """The profile the scan was judged with, for the clauses of rules that passed. Says so when it changed."""
    for ref in ((scan.get("settings") or {}).get("profile"), scan.get("profile_id")):
        if not ref:
            continue
        try:
            p = load_profile(ref)
        except TcmscanError:
            continue
        note = "" if p.sha256 == scan.get("profile_sha256") else (
            f"profile {p.id} changed since the scan was evaluated (now {p.version}, sha256 {p.sha256[:16]})")
        return p, note
    return None, "profile not found: clauses shown only for findings"


def _grade_of(store: Store, scan_id: str) -> tuple[dict[str, Any], ScanGrade, list[Finding]]:
    """Host, area and posture grades from the risk stored with each finding at evaluation (no re-grading)."""
    scan = store.scan(scan_id)
    findings = stored_findings(store, scan_id)
    g = grade_scan(store.assets(scan_id), findings, store.rule_results(scan_id), scan_vantage(scan))
    return scan, g, findings


def trend(store: Store, scan: dict[str, Any]) -> list[dict[str, Any]]:
    """Completed scans of the same scope up to this one (oldest first), graded the same way."""
    same = [s for s in store.scans() if s["scope"] == scan["scope"] and s["created"] <= scan["created"]
            and (s["status"] == "done" or s["id"] == scan["id"])]
    out = []
    for s in same[-TREND_SCANS:]:
        _, g, findings = _grade_of(store, s["id"])
        open_levels = [g.risks[f.fingerprint].level for f in findings if f.status == "open"]
        out.append({"scan_id": s["id"], "created": s["created"], "score": g.posture.score, "grade": g.posture.grade,
                    "compliance": g.posture.compliance,
                    "open_by_level": {str(lv): open_levels.count(lv) for lv in range(5, 0, -1)},
                    "open": len(open_levels)})
    return out


def host_keys_tofu(store: Store, scan_id: str) -> list[dict[str, Any]]:
    """SSH host keys trusted on first use in this scan (host.host-key status "new"): nobody vouched for them
    before the scanner logged in, so an operator confirms their fingerprints with the hosts' owners."""
    return [{"address": o.address, "port": o.data["port"], "key_type": o.data["key_type"],
             "fingerprint": o.data["fingerprint"]}
            for o in store.observations(scan_id)
            if o.check_id == "host.host-key" and o.key == "host-key" and o.data.get("status") == "new"]


def build(store: Store, scan_id: str, *, now: str | None = None) -> dict[str, Any]:
    scan, g, findings = _grade_of(store, scan_id)
    assets = store.assets(scan_id)
    results = store.rule_results(scan_id)
    attempts = store.attempts(scan_id)
    profile, profile_note = _profile_for(scan)
    rules = {r.id: r for r in profile.rules} if profile else {}

    frows = [finding_json(f) for f in findings]
    frows.sort(key=lambda r: (r["status"] != "open", -r["risk"]["R"], r["address"], r["port"] or 0, r["rule_id"]))

    # Per rule: verdict counts and clauses (from the profile; from a finding if the profile is gone).
    rule_rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rule_rows.setdefault(r.rule_id, {
            "rule_id": r.rule_id, "area": r.rule_id.split(".", 1)[0],
            "title": dict(rules[r.rule_id].title) if r.rule_id in rules else {"zh": r.rule_id, "en": r.rule_id},
            "clauses": dict(rules[r.rule_id].clauses) if r.rule_id in rules else {},
            "severity": rules[r.rule_id].severity if r.rule_id in rules else "",
            "counts": {v: 0 for v in VERDICTS}})
        row["counts"][r.status] = row["counts"].get(r.status, 0) + 1
    for f in findings:
        if f.rule_id in rule_rows and not rule_rows[f.rule_id]["clauses"]:
            rule_rows[f.rule_id]["clauses"] = dict(f.clauses)
            rule_rows[f.rule_id]["title"] = {"zh": f.title_zh, "en": f.title_en}

    areas = []
    for a in g.areas:
        area_rules = [r for r in sorted(rule_rows.values(), key=lambda x: x["rule_id"]) if r["area"] == a.area]
        areas.append({"area": a.area, "name": {"zh": a.name_zh, "en": a.name_en}, "counts": a.counts,
                      "assessed": a.assessed, "compliance": a.compliance, "formula": a.explain,
                      "open_findings": sum(1 for f in findings if f.area == a.area and f.status == "open"),
                      "rules": area_rules})

    by_addr = {a.address: a for a in assets}
    # A host's A and T as its findings were graded with; computed only for a host without findings.
    stored = {f.address: f.risk for f in findings if f.risk}
    hosts = []
    for address, hg in g.hosts.items():
        a = by_addr.get(address)
        if address in stored:
            r = stored[address]
            (A, a_src), (T, t_src) = (r["A"], r["inputs"]["A"]), (r["T"], r["inputs"]["T"])
        else:
            (A, a_src), (T, t_src) = asset_value(a), threat(a, scan_vantage(scan))
        hosts.append({
            "address": address, "name": a.name if a else "", "role": a.role if a else "",
            "class": a.cls if a else "", "zone": a.zone if a else "", "owner": a.owner if a else "",
            "criticality": a.criticality if a else 0,
            "services": [{"port": s.port, "proto": s.proto, "name": s.name, "product": s.product,
                          "version": s.version} for s in (a.services if a else [])],
            "grade": {"level": hg.level, "name": {"zh": hg.level_zh, "en": hg.level_en}, "max_risk": hg.max_risk,
                      "open_by_level": {str(k): v for k, v in hg.open_by_level.items()}, "waived": hg.waived,
                      "not_assessed": hg.not_assessed, "basis": hg.basis},
            "asset_value": {"value": A, "from": a_src}, "threat": {"value": T, "from": t_src},
            "findings": [r["fingerprint"] for r in frows if r["address"] == address]})

    prev = store.previous_scan_id(scan_id)
    diff: dict[str, Any] = {"previous_scan_id": prev}
    if prev:
        d = diff_findings(store.findings(prev), findings, results)
        diff.update({k: [finding_brief(f) for f in v] for k, v in d.items()})
    else:
        diff.update({k: [] for k in ("new", "fixed", "persisting", "waived", "not_reassessed")})

    not_assessed = {
        "attempts": [{"check_id": t["check_id"], "address": t["address"], "port": t["port"], "status": t["status"],
                      "reason": t["reason"], "detail": t["detail"] or ""}
                     for t in attempts if t["status"] in ("error", "skipped", "pending")],
        "rules": [{"rule_id": r.rule_id, "address": r.address, "reason": r.reason} for r in results
                  if r.status == "not_assessed"]}

    open_f = [f for f in findings if f.status == "open"]
    levels = [g.risks[f.fingerprint].level for f in open_f]
    m = model()
    p = g.posture
    settings = scan.get("settings") or {}
    doc = {
        "$schema": SCHEMA_ID,
        "format_version": FORMAT_VERSION,
        "generated": now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tool": {"name": "tcmscan", "version": __version__, "scan_tool_version": scan.get("tool_version") or ""},
        "scan": {"id": scan_id, "status": scan["status"], "created": scan["created"], "started": scan["started"],
                 "finished": scan.get("finished"), "targets": scan["targets"], "scope": scan["scope"],
                 "exclude": scan.get("exclude") or [], "vantage": scan_vantage(scan),
                 "checks_selected": settings.get("checks"),
                 "check_versions": scan.get("check_versions") or {},
                 "profile": {"id": scan["profile_id"], "version": scan["profile_version"],
                             "sha256": scan["profile_sha256"], "note": profile_note}},
        "summary": {
            "posture": {"score": p.score, "grade": p.grade, "name": {"zh": p.grade_zh, "en": p.grade_en},
                        "compliance": p.compliance, "coverage": p.coverage, "penalty": p.penalty,
                        "provisional": p.provisional, "capped_by_level": p.capped_by, "formula": p.explain},
            "hosts": len(hosts), "findings_open": len(open_f),
            "findings_waived": sum(1 for f in findings if f.status == "waived"),
            "open_by_level": {str(lv): levels.count(lv) for lv in range(5, 0, -1)},
            "open_by_severity": {s: sum(1 for f in open_f if f.severity == s)
                                 for s in reversed(SEVERITIES)},
            "rules_not_assessed": len(not_assessed["rules"]),
            "attempts_not_completed": len(not_assessed["attempts"]),
            "findings_digest": findings_digest(findings)},
        "risk_model": {"standard": "GB/T 20984-2022", "source": m["source"], "basis": m["basis"],
                       "formula": m["formula"], "levels": m["levels"],
                       "asset_value_by_class": m["asset_value_by_class"], "threat_by_zone": m["threat_by_zone"],
                       "threat_by_vantage": m["threat_by_vantage"], "vuln_by_severity": m["vuln_by_severity"],
                       "vuln_by_cvss": m["vuln_by_cvss"],
                       "posture": {**m["posture"], "penalty_weight": {str(k): v for k, v in
                                                                      m["posture"]["penalty_weight"].items()},
                                   "cap_by_level": {str(k): v for k, v in m["posture"]["cap_by_level"].items()}}},
        "areas": areas,
        "hosts": hosts,
        "findings": frows,
        "diff": diff,
        "not_assessed": not_assessed,
        "trend": trend(store, scan),
        "host_keys_tofu": host_keys_tofu(store, scan_id),
        "events": [{"time": e["time"], "address": e["address"] or "", "message": e["message"]}
                   for e in store.events(scan_id)][:500],
    }
    return doc


