"""The GB/T 20984-2022 risk model with exact values (inputs, L, F, R, level), host grades, area compliance and
the posture score."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from scanner.assess.grading import (
    area_compliance,
    asset_value,
    compute_risk,
    grade_host,
    grade_scan,
    posture,
    threat,
    vulnerability,
)
from scanner.core.models import Asset, Finding, RuleResult


def finding(rule: str = "crypto.cleartext.telnet", host: str = "10.0.0.1", severity: str = "high",
            status: str = "open", evidence: dict | None = None, fp: str = "a" * 24) -> Finding:
    return Finding(fingerprint=fp, rule_id=rule, check_id="ports.open", address=host, port=23, severity=severity,
                   area=rule.split(".")[0], title_zh="t", title_en="t", clauses={}, evidence=evidence or {},
                   evidence_key="", remediation={"zh": "r", "en": "r"}, status=status,
                   waiver={"owner": "o", "reason": "r", "expires": "2099-01-01"} if status == "waived" else None)


def test_example_from_the_brief():
    r = compute_risk(5, 4, 4)
    assert (r.L, r.F, r.R, r.level, r.level_en, r.level_zh) == (4.0, 4.47, 17.89, 4, "high", "高")
    assert r.explain == "A=5, T=4, V=4; L=√(T·V)=4.00, F=√(A·V)=4.47, R=L·F=17.89"


def test_exact_values_and_level_boundaries():
    assert (compute_risk(1, 1, 1).R, compute_risk(1, 1, 1).level) == (1.0, 1)
    assert (compute_risk(5, 5, 5).R, compute_risk(5, 5, 5).level_en) == (25.0, "very high")
    # R = V * sqrt(A*T) = 2 * 5 = 10 exactly: low, not medium (no float creep past a boundary)
    assert (compute_risk(5, 5, 2).R, compute_risk(5, 5, 2).level_en) == (10.0, "low")
    assert (compute_risk(3, 3, 3).R, compute_risk(3, 3, 3).level_en) == (9.0, "low")
    assert (compute_risk(4, 4, 4).R, compute_risk(4, 4, 4).level_en) == (16.0, "high")
    r = compute_risk(5, 4, 3)
    assert (r.L, r.F, r.R, r.level_en) == (3.46, 3.87, 13.42, "medium")
    assert (compute_risk(2, 2, 2).R, compute_risk(2, 2, 2).level_en) == (4.0, "very low")
    assert compute_risk(5, 5, 4).R == 20.0 and compute_risk(5, 5, 4).level_en == "high"
    assert compute_risk(5, 5, 5).cell == (5, 5) and compute_risk(5, 4, 4).cell == (4, 4)


def test_inputs_from_asset_zone_vantage_and_severity():
    his = Asset("10.0.0.1", role="HIS", zone="server", criticality=5, cls="server")
    pump = Asset("10.0.0.2", role="", zone="clinical", criticality=0, cls="medical-device")
    portal = Asset("10.0.0.3", zone="internet", internet_facing=True, criticality=3)
    assert asset_value(his) == (5, "role HIS → criticality 5")
    assert asset_value(pump) == (4, "class medical-device → 4")
    assert threat(his, "user") == (4, "max(zone server 3, vantage user 4) = 4")
    assert threat(pump, "clinical") == (2, "max(zone clinical 2, vantage clinical 2) = 2")
    assert threat(pump, "user")[0] == 4
    assert threat(portal, "management") == (5, "internet-facing → 5")
    assert vulnerability(finding(severity="medium")) == (3, "severity medium → 3")
    assert vulnerability(finding(severity="medium", evidence={"cvss": 9.8})) == (5, "CVSS 9.8 → 5")
    assert vulnerability(finding(severity="critical", evidence={"max_cvss": [6.5, 4.0]})) == (3, "CVSS 6.5 → 3")
    assert vulnerability(finding(severity="info", evidence={"cvss": "high"})) == (1, "severity info → 1")


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
def test_risk_always_in_range_and_consistent(A, T, V):
    r = compute_risk(A, T, V)
    assert 1 <= r.R <= 25
    assert abs(r.R - V * math.sqrt(A * T)) <= 0.005
    assert r.level == 1 + sum(r.R > m for m in (5, 10, 15, 20))


def test_area_compliance_never_counts_not_assessed_as_passed():
    results = [RuleResult("crypto.a", "h1", "passed"), RuleResult("crypto.a", "h2", "failed"),
               RuleResult("crypto.b", "h1", "waived"), RuleResult("crypto.b", "h2", "not_assessed", "timeout"),
               RuleResult("crypto.c", "h1", "not_applicable"), RuleResult("backup.x", "h1", "not_assessed", "auth")]
    by = {a.area: a for a in area_compliance(results)}
    assert by["crypto"].counts == {"passed": 1, "failed": 1, "waived": 1, "not_assessed": 1, "not_applicable": 1}
    assert (by["crypto"].assessed, by["crypto"].compliance) == (3, 0.33)
    assert (by["backup"].assessed, by["backup"].compliance) == (0, None)
    assert by["backup"].counts["not_assessed"] == 1
    assert (by["medical"].name_zh, by["medical"].name_en) == ("医疗设备信息安全", "Medical equipment security")
    assert [a.area for a in area_compliance([])] == ["crypto", "hardening", "accounts", "audit", "backup",
                                                     "medical", "data", "network"]


def test_posture_score_grade_cap_and_provisional():
    results = [RuleResult(f"crypto.r{i}", "h", "passed") for i in range(9)] + [RuleResult("crypto.x", "h", "failed")]
    high = finding(fp="b" * 24)
    p = posture(results, [(high, compute_risk(5, 4, 4))])       # one open high risk: penalty 5
    assert (p.compliance, p.coverage, p.penalty, p.score, p.grade, p.capped_by) == (0.9, 1.0, 5.0, 85.0, "C", 4)
    assert not p.provisional
    assert p.explain.startswith("score = 100 × compliance 0.90 − penalty 5")
    p = posture(results, [])
    assert (p.score, p.grade, p.capped_by) == (90.0, "A", None)
    waived = finding(status="waived")
    assert posture(results, [(waived, compute_risk(5, 5, 5))]).grade == "A"   # a waived risk costs no points
    few = [RuleResult("crypto.a", "h", "passed")] + [RuleResult(f"audit.{i}", "h", "not_assessed") for i in range(4)]
    p = posture(few, [])
    assert (p.coverage, p.provisional, p.score) == (0.2, True, 100.0)
    p = posture([RuleResult("crypto.a", "h", "not_assessed")], [])
    assert (p.compliance, p.score, p.grade, p.provisional) == (None, 0.0, "E", True)


def test_host_grade_is_the_worst_open_risk():
    f1, f2, f3 = finding(fp="1" * 24), finding(fp="2" * 24, severity="medium"), finding(fp="3" * 24, status="waived")
    risks = [(f1, compute_risk(5, 4, 4)), (f2, compute_risk(5, 4, 3)), (f3, compute_risk(5, 5, 5))]
    g = grade_host("10.0.0.1", risks, [RuleResult("audit.a", "10.0.0.1", "not_assessed")])
    assert (g.level, g.level_en, g.max_risk, g.waived, g.not_assessed) == (4, "high", 17.89, 1, 1)
    assert g.open_by_level == {5: 0, 4: 1, 3: 1, 2: 0, 1: 0}
    g = grade_host("10.0.0.9", [], [])
    assert (g.level, g.level_en) == (0, "no open risk")


def test_grade_scan_uses_vantage():
    a = Asset("10.0.0.2", zone="clinical", cls="medical-device", criticality=5)
    f = finding(host="10.0.0.2", severity="critical")
    assert grade_scan([a], [f], [], "clinical").risks[f.fingerprint].R == 15.81   # T=2: 5*sqrt(10)
    assert grade_scan([a], [f], [], "user").risks[f.fingerprint].R == 22.36       # T=4: 5*sqrt(20)
