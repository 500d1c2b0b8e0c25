"""Risk grading in the structure of GB/T 20984-2022: per finding R = L(T, V) * F(A, V), per host a grade, per
chapter-7 area the share of rules passed, and one posture score for the scan.

Every figure carries its inputs and formula (`explain`), because a grade a reader cannot recompute is not
worth handing to an auditor. The numbers live in baselines/knowledge/risk_model.yaml, not here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from scanner.core.knowledge import knowledge
from scanner.core.labels import labels_of
from scanner.core.models import Asset, Finding, RuleResult
from scanner.core.vocab import AREAS, VERDICTS
from scanner.store import Store

AREA_NAMES: dict[str, dict[str, str]] = {a: labels_of("area", a) for a in AREAS}   # scanner/core/labels.yaml


def model() -> dict[str, Any]:
    return knowledge()["risk_model"]


def _half_up(x: float) -> int:
    return int(Decimal(str(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _r2(x: float) -> float:
    # Two decimals, half up, so the printed figure and the level computed from it always agree.
    return float(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# -- the three inputs ------------------------------------------------------------------------------------
def asset_value(asset: Asset | None) -> tuple[int, str]:
    """A in 1-5: declared criticality (inventory, or filled from the role at discovery), else by class."""
    if asset is None:
        return 3, "asset unknown: default 3"
    if 1 <= asset.criticality <= 5:
        src = f"role {asset.role}" if asset.role else "criticality"
        return asset.criticality, f"{src} → criticality {asset.criticality}"
    v = int(model()["asset_value_by_class"].get(asset.cls, 3))
    return v, f"class {asset.cls} → {v}"


def threat(asset: Asset | None, vantage: str) -> tuple[int, str]:
    """T in 1-5: the larger of the asset zone's exposure and the exposure of the zone the scan ran from."""
    m = model()
    zone = asset.zone if asset else "user"
    tz = int(m["threat_by_zone"].get(zone, 4))
    tv = int(m["threat_by_vantage"].get(vantage, 4))
    if asset is not None and asset.internet_facing:
        return 5, "internet-facing → 5"
    t = max(tz, tv)
    return t, f"max(zone {zone} {tz}, vantage {vantage} {tv}) = {t}"


def cvss_in(evidence: dict[str, Any]) -> float | None:
    """A CVSS base score the rule put in its evidence (any key naming cvss; the largest if a list)."""
    best: float | None = None
    for k, v in (evidence or {}).items():
        if "cvss" not in str(k).lower():
            continue
        values = v if isinstance(v, list) else [v]
        for x in values:
            if isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 10:
                best = x if best is None else max(best, float(x))
    return best


def vulnerability(finding: Finding) -> tuple[int, str]:
    m = model()
    score = cvss_in(finding.evidence)
    if score is not None:
        for band in m["vuln_by_cvss"]:
            if score >= band["min"]:
                return int(band["v"]), f"CVSS {score} → {band['v']}"
    v = int(m["vuln_by_severity"][finding.severity])
    return v, f"severity {finding.severity} → {v}"


# -- one finding -----------------------------------------------------------------------------------------
@dataclass
class Risk:
    A: int
    T: int
    V: int
    L: float
    F: float
    R: float
    level: int
    level_zh: str
    level_en: str
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def explain(self) -> str:
        return (f"A={self.A}, T={self.T}, V={self.V}; L=√(T·V)={self.L:.2f}, F=√(A·V)={self.F:.2f}, "
                f"R=L·F={self.R:.2f}")

    def to_dict(self) -> dict[str, Any]:
        """What is stored with the finding (Finding.risk) and shown by every format; a list for the cell so the
        dict is the same before and after a JSON round trip."""
        return {**asdict(self), "formula": self.explain, "cell": list(self.cell)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Risk:
        """The stored figures as they were computed at evaluation: nothing is re-derived from the model."""
        return cls(int(d["A"]), int(d["T"]), int(d["V"]), float(d["L"]), float(d["F"]), float(d["R"]),
                   int(d["level"]), d["level_zh"], d["level_en"], dict(d.get("inputs") or {}))

    @property
    def cell(self) -> tuple[int, int]:
        """(likelihood, impact) bin 1-5 for the risk matrix."""
        return (min(5, max(1, _half_up(self.L))), min(5, max(1, _half_up(self.F))))


def level_of(r: float) -> tuple[int, str, str]:
    for lv in model()["levels"]:
        if r <= lv["max"]:
            return int(lv["level"]), lv["zh"], lv["en"]
    last = model()["levels"][-1]
    return int(last["level"]), last["zh"], last["en"]


def compute_risk(A: int, T: int, V: int, inputs: dict[str, str] | None = None) -> Risk:
    for name, x in (("A", A), ("T", T), ("V", V)):
        if not 1 <= x <= 5:
            raise ValueError(f"{name} must be 1-5, not {x}")
    L, F = math.sqrt(T * V), math.sqrt(A * V)
    R = _r2(L * F)
    level, zh, en = level_of(R)
    return Risk(A, T, V, _r2(L), _r2(F), R, level, zh, en, dict(inputs or {}))


def grade_finding(finding: Finding, asset: Asset | None, vantage: str) -> Risk:
    A, a_src = asset_value(asset)
    T, t_src = threat(asset, vantage)
    V, v_src = vulnerability(finding)
    return compute_risk(A, T, V, {"A": a_src, "T": t_src, "V": v_src})


def scan_vantage(scan: dict[str, Any]) -> str:
    """The zone a stored scan ran from (scan --vantage), as evaluation used it."""
    return (scan.get("settings") or {}).get("vantage", "user")


def with_risk(findings: list[Finding], assets: list[Asset], vantage: str) -> list[Finding]:
    """Findings with their risk: the stored figures as they are; a finding without any (stored before schema
    3) is graded now with the current model, since the old scan cannot be re-judged without changing it."""
    by_addr = {a.address: a for a in assets}
    return [f if f.risk is not None else
            replace(f, risk=grade_finding(f, by_addr.get(f.address), vantage).to_dict()) for f in findings]


def stored_findings(store: Store, scan_id: str) -> list[Finding]:
    """A stored scan's findings, each with its risk: what the CLI and the report read."""
    findings = store.findings(scan_id)
    if all(f.risk is not None for f in findings):
        return findings
    return with_risk(findings, store.assets(scan_id), scan_vantage(store.scan(scan_id)))


# -- hosts, areas, posture ---------------------------------------------------------------------------------
@dataclass
class HostGrade:
    address: str
    level: int                         # worst open risk level; 0 = no open finding
    level_zh: str
    level_en: str
    max_risk: float
    open_by_level: dict[int, int]
    waived: int
    not_assessed: int
    basis: str                         # how the grade was reached, printed beside it


def grade_host(address: str, risks: list[tuple[Finding, Risk]], results: Iterable[RuleResult]) -> HostGrade:
    open_risks = [r for f, r in risks if f.status == "open"]
    by_level = Counter(r.level for r in open_risks)
    waived = sum(1 for f, _ in risks if f.status == "waived")
    na = sum(1 for r in results if r.address == address and r.status == "not_assessed")
    if open_risks:
        worst = max(open_risks, key=lambda r: r.R)
        basis = f"worst open risk R={worst.R:.2f} ({worst.explain})"
        return HostGrade(address, worst.level, worst.level_zh, worst.level_en, worst.R,
                         {lv: by_level.get(lv, 0) for lv in range(5, 0, -1)}, waived, na, basis)
    return HostGrade(address, 0, "无未处置风险", "no open risk", 0.0, {lv: 0 for lv in range(5, 0, -1)}, waived, na,
                     "no open finding" + (f"; {na} rule(s) not assessed" if na else ""))


@dataclass
class AreaScore:
    area: str
    name_zh: str
    name_en: str
    counts: dict[str, int]
    assessed: int                      # passed + failed + waived: a verdict was reached
    compliance: float | None           # passed / assessed; None when nothing could be assessed

    @property
    def explain(self) -> str:
        c = self.counts
        if self.compliance is None:
            return f"0 assessed ({c['not_assessed']} not assessed)"
        return (f"{c['passed']} passed / {self.assessed} assessed = {self.compliance:.0%}; "
                f"{c['not_assessed']} not assessed (not counted as passed)")


def area_compliance(results: Iterable[RuleResult]) -> list[AreaScore]:
    """Per chapter-7 area over (rule, host) verdicts. Waived counts as assessed and not passed: a waiver
    accepts a risk, it does not remove it. Not assessed is counted apart, never as passed."""
    per: dict[str, Counter[str]] = {a: Counter() for a in AREAS}
    for r in results:
        per.setdefault(r.rule_id.split(".", 1)[0], Counter())[r.status] += 1
    out = []
    for area, c in per.items():
        counts = {v: c.get(v, 0) for v in VERDICTS}
        assessed = counts["passed"] + counts["failed"] + counts["waived"]
        names = AREA_NAMES.get(area, {"zh": area, "en": area})
        out.append(AreaScore(area, names["zh"], names["en"], counts, assessed,
                             _r2(counts["passed"] / assessed) if assessed else None))
    return out


@dataclass
class Posture:
    score: float
    grade: str
    grade_zh: str
    grade_en: str
    compliance: float | None
    coverage: float | None
    penalty: float
    provisional: bool
    capped_by: int | None
    explain: str


def posture(results: list[RuleResult], risks: list[tuple[Finding, Risk]]) -> Posture:
    """score = 100 * compliance - min(cap, sum of penalty weights of open risks), clamped to [0, 100];
    grade by score, capped by the worst open risk level; provisional when coverage is low."""
    m = model()["posture"]
    c = Counter(r.status for r in results)
    assessed = c["passed"] + c["failed"] + c["waived"]
    relevant = assessed + c["not_assessed"]
    compliance = c["passed"] / assessed if assessed else None
    coverage = assessed / relevant if relevant else None
    weights = {int(k): float(v) for k, v in m["penalty_weight"].items()}
    raw_penalty = sum(weights.get(r.level, 0) for f, r in risks if f.status == "open")
    penalty = min(float(m["penalty_cap"]), raw_penalty)
    score = max(0.0, min(100.0, 100.0 * (compliance or 0.0) - penalty))
    score = _r2(score)
    grades = m["grades"]
    g = next(x for x in grades if score >= x["min"])
    worst = max((r.level for f, r in risks if f.status == "open"), default=0)
    capped_by = None
    cap = {int(k): v for k, v in m["cap_by_level"].items()}
    order = [x["grade"] for x in grades]
    for lv in sorted(cap, reverse=True):
        if worst >= lv and order.index(g["grade"]) < order.index(cap[lv]):
            g = next(x for x in grades if x["grade"] == cap[lv])
            capped_by = worst
            break
    provisional = coverage is None or coverage < float(m["min_coverage"])
    explain = (f"score = 100 × compliance {(compliance or 0):.2f} − penalty {penalty:g} "
               f"(open risks weighted {', '.join(f'L{k}:{v:g}' for k, v in sorted(weights.items(), reverse=True))}"
               f", cap {m['penalty_cap']}) = {score:.2f} → {g['grade']}")
    if capped_by:
        explain += f" (capped: open risk at level {capped_by})"
    if provisional:
        explain += f"; provisional: coverage {(coverage or 0):.0%} < {float(m['min_coverage']):.0%}"
    return Posture(score, g["grade"], g["zh"], g["en"], None if compliance is None else _r2(compliance),
                   None if coverage is None else _r2(coverage), _r2(penalty), provisional, capped_by, explain)


@dataclass
class ScanGrade:
    risks: dict[str, Risk]             # by finding fingerprint
    hosts: dict[str, HostGrade]
    areas: list[AreaScore]
    posture: Posture


def grade_scan(assets: list[Asset], findings: list[Finding], results: list[RuleResult], vantage: str) -> ScanGrade:
    """Host, area and posture grades from each finding's stored risk (graded here only if it has none)."""
    by_addr = {a.address: a for a in assets}
    risks = {f.fingerprint: Risk.from_dict(f.risk) for f in with_risk(findings, assets, vantage)}
    pairs = [(f, risks[f.fingerprint]) for f in findings]
    hosts = {}
    for address in sorted({*by_addr, *(f.address for f in findings)}, key=_addr_key):
        hosts[address] = grade_host(address, [(f, r) for f, r in pairs if f.address == address], results)
    return ScanGrade(risks, hosts, area_compliance(results), posture(results, pairs))


def _addr_key(address: str) -> tuple[int, str]:
    import ipaddress

    try:
        a = ipaddress.ip_address(address)
        return (a.version, f"{int(a):040d}")
    except ValueError:
        return (9, address)
