"""Observations judged against a baseline profile: findings with stable fingerprints and their GB/T 20984 risk
(graded here, once, and stored with them), and a verdict per (rule, asset) in which an error is never a pass."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from scanner.assess.baseline import Profile, Rule, Waiver
from scanner.assess.expr import ExprError, ExprRefused, Namespace, evaluate
from scanner.assess.grading import grade_finding
from scanner.core.errors import UsageError
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, Finding, Observation, RuleResult


def fingerprint(rule_id: str, host: str, port: int | None, evidence_key: str) -> str:
    """Stable across scans: the same weakness on the same asset keeps its key, so diffs and waivers hold."""
    raw = f"{rule_id}|{host}|{'' if port is None else port}|{evidence_key}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _ns(value: Any) -> Any:
    if isinstance(value, dict):
        return Namespace({k: _ns(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_ns(v) for v in value]
    return value


def asset_names(asset: Asset) -> dict[str, Any]:
    d = asset.to_dict()
    d.pop("services")
    d.update(d.pop("extra", {}) or {})
    d["ports"] = sorted({s.port for s in asset.services})
    return d


def applies(rule: Rule, asset: Asset, names: dict[str, Any]) -> bool:
    a = rule.applies_to
    if a.get("classes") and asset.cls not in a["classes"]:
        return False
    if a.get("zones") and asset.zone not in a["zones"]:
        return False
    if a.get("roles") and asset.role.lower() not in [r.lower() for r in a["roles"]]:
        return False
    return not (a.get("when") and not evaluate(a["when"], names))


def waiver_for(waivers: Iterable[Waiver], rule_id: str, host: str, port: int | None, today: dt.date) -> Waiver | None:
    for w in waivers:
        if not fnmatch.fnmatchcase(rule_id, w.rule):
            continue
        if w.host != "*":
            try:
                if ipaddress.ip_address(host) not in ipaddress.ip_network(w.host, strict=False):
                    continue
            except ValueError:
                continue
        if w.port is not None and w.port != port:
            continue
        if dt.date.fromisoformat(str(w.expires)) < today:
            continue   # an expired waiver mutes nothing
        return w
    return None


def evaluate_scan(profile: Profile, assets: list[Asset], attempts: list[dict[str, Any]],
                  observations: list[Observation], *, waivers: Iterable[Waiver] = (), vantage: str = "user",
                  now: str | None = None) -> tuple[list[Finding], list[RuleResult]]:
    now = now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    today = dt.date.fromisoformat(now[:10])
    waivers = [*profile.waivers, *waivers]
    k = _ns(knowledge())
    by_check_host: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for o in observations:
        by_check_host[(o.check_id, o.address)].append(o)
    attempts_by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for a in attempts:
        attempts_by[(a["check_id"], a["address"])].append(a)

    # once per rule, not per asset: a profile's params are as large as its author made them
    shared = _ns(profile.params)
    params = {r.id: Namespace({**shared, **_ns(r.params)}) for r in profile.enabled_rules}

    findings: dict[str, Finding] = {}
    results: list[RuleResult] = []
    for asset in assets:
        base = {"asset": _ns(asset_names(asset)), "k": k, "scan": Namespace(vantage=vantage, now=now)}
        for rule in profile.enabled_rules:
            names = {**base, "params": params[rule.id]}
            try:
                if not applies(rule, asset, names):
                    results.append(RuleResult(rule.id, asset.address, "not_applicable", "rule scope"))
                    continue
            except ExprRefused as e:
                raise _refused(rule, e) from None
            except ExprError as e:
                results.append(RuleResult(rule.id, asset.address, "not_assessed", f"rule error: {e}"))
                continue
            tries = attempts_by.get((rule.check, asset.address), [])
            ran = [t for t in tries if t["status"] != "not_applicable"]
            if not tries:
                # the check did not run at all in this scan (not selected, or not installed): unknown, not n/a
                results.append(RuleResult(rule.id, asset.address, "not_assessed",
                                          f"check {rule.check} did not run in this scan"))
                continue
            if not ran:
                results.append(RuleResult(rule.id, asset.address, "not_applicable", "check not applicable"))
                continue
            hits: list[Finding] = []
            eval_error = ""
            unavailable: list[str] = []
            for o in by_check_host.get((rule.check, asset.address), []):
                if rule.key and o.key != rule.key:
                    continue
                if isinstance(o.data, dict) and o.data.get("unavailable"):
                    # the check could not read this fact on the host (command missing, no sudo, ...):
                    # the rule is not assessed for it - never a pass
                    unavailable.append(f"{o.key}: {o.data['unavailable']}"[:200])
                    continue
                local = {**names, "data": _ns(o.data), "obs": Namespace(port=o.port, key=o.key)}
                try:
                    if not evaluate(rule.when, local):
                        continue
                    evidence = {n: evaluate(e, local) for n, e in rule.evidence.items()} or o.data
                    ev_key = str(evaluate(rule.evidence_key, local)) if rule.evidence_key else ""
                    severity = next((b["severity"] for b in rule.severity_by if evaluate(b["when"], local)),
                                    rule.severity)
                except ExprRefused as e:
                    raise _refused(rule, e) from None
                except ExprError as e:
                    eval_error = f"rule error: {e}"
                    continue
                fp = fingerprint(rule.id, asset.address, o.port, ev_key)
                w = waiver_for(waivers, rule.id, asset.address, o.port, today)
                f = Finding(fingerprint=fp, rule_id=rule.id, check_id=rule.check, address=asset.address, port=o.port,
                            severity=severity, area=rule.area, title_zh=rule.title["zh"],
                            title_en=rule.title["en"], clauses=dict(rule.clauses), evidence=_plain(evidence),
                            evidence_key=ev_key, remediation=dict(rule.remediation), basis=rule.basis["kind"],
                            capability=rule.capability, status="waived" if w else "open",
                            waiver=None if not w else {"owner": w.owner, "reason": w.reason, "expires": str(w.expires)})
                if fp not in findings:
                    # graded now and stored with it: a report renders these figures, it never re-grades
                    f.risk = grade_finding(f, asset, vantage).to_dict()
                    findings[fp] = f
                    hits.append(f)
            failed = [t for t in ran if t["status"] != "completed"]
            if hits:
                status = "failed" if any(f.status == "open" for f in hits) else "waived"
                results.append(RuleResult(rule.id, asset.address, status, ""))
            elif eval_error:
                results.append(RuleResult(rule.id, asset.address, "not_assessed", eval_error))
            elif unavailable:
                results.append(RuleResult(rule.id, asset.address, "not_assessed",
                                          "unavailable: " + "; ".join(sorted(set(unavailable)))))
            elif failed:
                why = "; ".join(sorted({f"{t['reason']}: {t['detail']}"[:200] for t in failed}))
                results.append(RuleResult(rule.id, asset.address, "not_assessed", why))
            else:
                results.append(RuleResult(rule.id, asset.address, "passed", ""))
    return list(findings.values()), results


def _refused(rule: Rule, e: ExprRefused) -> UsageError:
    """An expression over its budget is the profile's fault, for every asset alike: the command stops (exit 2)
    naming the rule and its file, rather than record the rule as not assessed and carry on."""
    return UsageError(f"rule {rule.id} ({rule.source}): {e}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set) else items
    return value


def diff_findings(old: list[Finding], new: list[Finding], new_results: list[RuleResult]) -> dict[str, list[Finding]]:
    """new / fixed / persisting / waived, plus findings that could not be re-assessed (never called fixed)."""
    old_by = {f.fingerprint: f for f in old}
    new_by = {f.fingerprint: f for f in new}
    verdict = {(r.rule_id, r.address): r.status for r in new_results}
    out: dict[str, list[Finding]] = {"new": [], "fixed": [], "persisting": [], "waived": [], "not_reassessed": []}
    for fp, f in new_by.items():
        if f.status == "waived":
            out["waived"].append(f)
        elif fp in old_by and old_by[fp].status == "open":
            out["persisting"].append(f)
        else:
            out["new"].append(f)
    for fp, f in old_by.items():
        if fp in new_by:
            continue
        if verdict.get((f.rule_id, f.address)) in ("passed", "failed", "waived"):
            out["fixed"].append(f)
        else:
            out["not_reassessed"].append(f)
    return out
