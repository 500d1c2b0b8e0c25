"""Machine-readable renderings of the report document: JSON, CSV (spreadsheet-safe) and SARIF 2.1.0."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from scanner.core.output import findings_csv

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def render_csv(doc: dict[str, Any]) -> str:
    """One row per finding, the columns of `tcmscan findings --format csv`; every cell neutralised and clipped."""
    return findings_csv(doc["findings"], {h["address"]: h["name"] for h in doc["hosts"]}, bom=True)


_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def render_sarif(doc: dict[str, Any]) -> str:
    rules: dict[str, dict[str, Any]] = {}
    for a in doc["areas"]:
        for r in a["rules"]:
            rules[r["rule_id"]] = r
    for f in doc["findings"]:   # a finding's rule may be missing from the profile (changed since the scan)
        rules.setdefault(f["rule_id"], {"rule_id": f["rule_id"], "area": f["area"],
                                        "title": {"zh": f["title_zh"], "en": f["title_en"]},
                                        "clauses": f["clauses"], "severity": f["severity"]})
    ids = sorted(rules)
    remediation = {f["rule_id"]: f["remediation"] for f in doc["findings"]}
    driver_rules = []
    for rid in ids:
        r = rules[rid]
        entry: dict[str, Any] = {
            "id": rid, "name": rid,
            "shortDescription": {"text": r["title"]["en"]},
            "fullDescription": {"text": r["title"]["zh"]},
            "properties": {"area": r["area"], "clauses": r["clauses"], "severity": r["severity"],
                           "title_zh": r["title"]["zh"]}}
        if r["severity"]:
            entry["defaultConfiguration"] = {"level": _SARIF_LEVEL[r["severity"]]}
        if rid in remediation:
            entry["help"] = {"text": f"{remediation[rid].get('en', '')}\n{remediation[rid].get('zh', '')}".strip()}
        driver_rules.append(entry)
    results = []
    for f in doc["findings"]:
        address = f["address"]
        where = f"{address}:{f['port']}" if f["port"] is not None else address
        uri = f"tcp://{address}:{f['port']}" if f["port"] is not None else f"host://{address}"
        if ":" in address:   # IPv6 literal in a URI needs brackets
            uri = f"tcp://[{address}]:{f['port']}" if f["port"] is not None else f"host://[{address}]"
        r = f["risk"]
        res: dict[str, Any] = {
            "ruleId": f["rule_id"], "ruleIndex": ids.index(f["rule_id"]), "level": _SARIF_LEVEL[f["severity"]],
            "kind": "fail",
            "message": {"text": f"{f['title_en']} on {where}: risk {r['R']:.2f} ({r['level_en']}); "
                                f"{r['formula']}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}},
                           "logicalLocations": [{"name": where, "fullyQualifiedName": where, "kind": "host"}]}],
            "partialFingerprints": {"tcmscan/v1": f["fingerprint"]},
            # the finding itself, in the one shape every other format uses
            "properties": dict(f)}
        if f["status"] == "waived" and f["waiver"]:
            res["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": f"{f['waiver'].get('reason', '')} (owner "
                                                     f"{f['waiver'].get('owner', '')}, expires "
                                                     f"{f['waiver'].get('expires', '')})"}]
        results.append(res)
    notes = [{"level": "warning", "descriptor": {"id": a["check_id"]},
              "message": {"text": f"not assessed: {a['check_id']} on {a['address']}"
                                  f"{'' if a['port'] is None else ':' + str(a['port'])}: {a['status']} "
                                  f"({a['reason']}) {a['detail'][:500]}"}}
             for a in doc["not_assessed"]["attempts"]]
    scan = doc["scan"]
    invocation: dict[str, Any] = {"executionSuccessful": scan["status"] == "done",
                                  "toolExecutionNotifications": notes}
    for key, src in (("startTimeUtc", "started"), ("endTimeUtc", "finished")):
        if scan.get(src):
            invocation[key] = scan[src].replace("+00:00", "Z")
    sarif = {
        "$schema": SARIF_SCHEMA_URI, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "tcmscan", "version": doc["tool"]["version"],
                                "semanticVersion": doc["tool"]["version"], "rules": driver_rules}},
            "invocations": [invocation],
            "automationDetails": {"id": f"tcmscan/{scan['id']}"},
            "results": results,
            "properties": {"scan_id": scan["id"], "scope": scan["scope"], "profile": scan["profile"],
                           "posture": doc["summary"]["posture"],
                           "findings_digest": doc["summary"]["findings_digest"]}}]}
    return json.dumps(sarif, ensure_ascii=False, indent=2) + "\n"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def validate_report(doc: dict[str, Any]) -> list[str]:
    """Errors of the report JSON against reports/schema/report.schema.json (empty = valid)."""
    import jsonschema

    v = jsonschema.Draft202012Validator(schema("report.schema.json"))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in v.iter_errors(doc)]


def validate_sarif(log: dict[str, Any]) -> list[str]:
    """Errors against the official SARIF 2.1.0 schema (OASIS, rtm.5; a JSON Schema draft-04 document)."""
    import jsonschema

    v = jsonschema.Draft4Validator(schema("sarif-2.1.0-rtm.5.json"))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in v.iter_errors(log)]
