"""Every rule of the default profile against example observations that must and must not fire (bandit's
examples/ idea): baselines/profiles/tcm-2024-l3/examples/<rule file stem>.yaml, keyed by rule id.

Each example runs through the real evaluation (scanner.assess.evaluate.evaluate_scan) with a one-rule copy of
the profile; the verdict, and the evidence where the example states it, must match exactly."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from scanner.assess.baseline import DEFAULT_PROFILE, Profile, Rule, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.knowledge import read_yaml
from scanner.core.models import Asset, Observation, Service

NOW = "2026-11-21T00:00:00+00:00"
ADDRESS = "10.77.9.9"
VERDICTS = ("failed", "passed", "not_assessed", "not_applicable")
FIELDS = {"name", "verdict", "data", "port", "key", "asset", "params", "vantage", "now", "evidence", "severity",
          "attempt"}
ASSET_FIELDS = {"name", "class", "role", "zone", "criticality", "fragile", "internet_facing", "ports"}
# checks that report a fact they could not read as {"unavailable": ...}: their rules need such an example
UNAVAILABLE_CHECKS = {"host.snapshot"}

PROFILE = load_profile(DEFAULT_PROFILE)
PROFILE_DIR = Path(PROFILE.rules[0].source).parent.parent


def example_files(profile: Profile) -> dict[str, Path]:
    """rule file stem -> its example file (which may not exist yet)."""
    return {Path(r.source).stem: Path(r.source).parent.parent / "examples" / f"{Path(r.source).stem}.yaml"
            for r in profile.rules}


def load_examples(profile: Profile) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """rule id -> (example file stem, examples). Reads every examples/*.yaml, also ones without a rule file."""
    out: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for f in sorted((PROFILE_DIR / "examples").glob("*.yaml")):
        doc = read_yaml(f, "rule examples") or {}
        for rid, examples in doc.items():
            out[rid] = (f.stem, examples)
    return out


def coverage_problems(profile: Profile, examples: dict[str, tuple[str, list[dict[str, Any]]]]) -> list[str]:
    """Everything that makes the example set incomplete or wrong, one line each."""
    rules = {r.id: r for r in profile.rules}
    problems = [f"{rid}: examples for an unknown rule" for rid in sorted(set(examples) - set(rules))]
    for rid, r in sorted(rules.items()):
        stem, exs = examples.get(rid, ("", []))
        if not exs:
            problems.append(f"{rid}: no examples")
            continue
        if stem != Path(r.source).stem:
            problems.append(f"{rid}: examples in examples/{stem}.yaml, rule in rules/{Path(r.source).stem}.yaml")
        if not isinstance(exs, list) or not all(isinstance(e, dict) for e in exs):
            problems.append(f"{rid}: examples must be a list of mappings")
            continue
        for i, e in enumerate(exs):
            if set(e) - FIELDS or set(e.get("asset") or {}) & {"address", "services", "extra", "cls"}:
                problems.append(f"{rid}[{i}]: unknown fields {sorted(set(e) - FIELDS)}")
            if e.get("verdict") not in VERDICTS:
                problems.append(f"{rid}[{i}]: verdict must be one of {VERDICTS}")
        verdicts = [e.get("verdict") for e in exs]
        for need in ("failed", "passed"):
            if need not in verdicts:
                problems.append(f"{rid}: no example with verdict {need}")
        if r.evidence and not any(e.get("verdict") == "failed" and "evidence" in e for e in exs):
            problems.append(f"{rid}: the rule has evidence but no failed example states it")
        if r.check in UNAVAILABLE_CHECKS and not any(
                isinstance(e.get("data"), dict) and "unavailable" in e["data"] for e in exs):
            problems.append(f"{rid}: no {{unavailable: ...}} example")
    return problems


def make_asset(spec: dict[str, Any]) -> Asset:
    spec = dict(spec)
    known = {k: spec.pop(k) for k in list(spec) if k in ASSET_FIELDS}
    ports = known.pop("ports", [])
    cls = known.pop("class", "server")
    return Asset(address=ADDRESS, cls=cls, zone=known.pop("zone", "server"), services=[Service(p) for p in ports],
                 extra=spec, **known)


def run_example(profile: Profile, rule: Rule, ex: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    one = copy.deepcopy(rule)
    one.params = {**one.params, **(ex.get("params") or {})}
    one.enabled = True
    solo = dataclasses.replace(profile, rules=[one], waivers=[])
    port = ex.get("port")
    attempt = {"check_id": rule.check, "address": ADDRESS, "port": port, "status": "completed", "reason": "",
               "detail": "", **(ex.get("attempt") or {})}
    obs = [] if "data" not in ex else [
        Observation(rule.check, ADDRESS, port, ex.get("key", rule.key or ""), ex["data"])]
    return evaluate_scan(solo, [make_asset(ex.get("asset") or {})], [attempt], obs,
                         vantage=ex.get("vantage", "user"), now=ex.get("now", NOW))


def _cases() -> list[Any]:
    rules = {r.id: r for r in PROFILE.rules}
    out = []
    for rid, (_, exs) in sorted(load_examples(PROFILE).items()):
        if rid not in rules or not isinstance(exs, list):
            continue      # reported by test_every_rule_has_examples
        for i, ex in enumerate(exs):
            label = str(ex.get("name", ex.get("verdict")))[:40].replace(" ", "_")
            out.append(pytest.param(rid, ex, id=f"{rid}[{i}:{label}]"))
    return out


@pytest.mark.parametrize("rule_id,example", _cases())
def test_rule_example(rule_id: str, example: dict[str, Any]) -> None:
    rule = PROFILE.rule(rule_id)
    findings, results = run_example(PROFILE, rule, example)
    assert [(r.rule_id, r.status) for r in results] == [(rule_id, example["verdict"])], [r.reason for r in results]
    if example["verdict"] != "failed":
        assert findings == []
        return
    assert [f.rule_id for f in findings] == [rule_id]
    f = findings[0]
    assert f.port == example.get("port")
    assert "evidence" in example, "a failing example states the evidence its finding carries"
    assert f.evidence == example["evidence"]
    assert f.severity == example.get("severity", rule.severity)
    assert f.clauses == rule.clauses and f.clauses     # every finding cites its clauses


def test_every_rule_has_examples() -> None:
    assert coverage_problems(PROFILE, load_examples(PROFILE)) == []


def test_coverage_check_catches_missing_and_unknown_examples() -> None:
    r = PROFILE.rule("crypto.cleartext.telnet")
    stem = Path(r.source).stem
    one = dataclasses.replace(PROFILE, rules=[r])
    fires = {"verdict": "failed", "data": {}, "evidence": {}}
    passes = {"verdict": "passed", "data": {}}
    assert coverage_problems(one, {r.id: (stem, [fires, passes])}) == []
    assert coverage_problems(one, {r.id: (stem, [passes])}) == [
        f"{r.id}: no example with verdict failed", f"{r.id}: the rule has evidence but no failed example states it"]
    assert coverage_problems(one, {r.id: (stem, [fires])}) == [f"{r.id}: no example with verdict passed"]
    assert coverage_problems(one, {}) == [f"{r.id}: no examples"]
    assert coverage_problems(one, {r.id: (stem, [fires, passes]), "crypto.nope": (stem, [fires])}) == [
        "crypto.nope: examples for an unknown rule"]
    assert coverage_problems(one, {r.id: (stem, [{"verdict": "failed", "data": {}}, passes])}) == [
        f"{r.id}: the rule has evidence but no failed example states it"]
    assert coverage_problems(one, {r.id: ("network", [fires, passes])}) == [
        f"{r.id}: examples in examples/network.yaml, rule in rules/{stem}.yaml"]
    assert coverage_problems(one, {r.id: (stem, [fires, passes, {"verdict": "fires", "dta": {}}])}) == [
        f"{r.id}[2]: unknown fields ['dta']", f"{r.id}[2]: verdict must be one of {VERDICTS}"]
    snap = dataclasses.replace(PROFILE, rules=[PROFILE.rule("accounts.idle-timeout")])
    assert coverage_problems(snap, {"accounts.idle-timeout": ("accounts", [fires, passes])}) == [
        "accounts.idle-timeout: no {unavailable: ...} example"]


def test_an_example_that_lies_fails() -> None:
    """The runner itself: a must-fire example whose data does not fire yields 'passed', not a silent pass."""
    rule = PROFILE.rule("crypto.cleartext.telnet")
    _, results = run_example(PROFILE, rule, {"verdict": "failed", "port": 22, "data": {
        "port": 22, "proto": "tcp", "name": "ssh", "banner": "SSH-2.0-OpenSSH_9.2p1", "product": "", "version": "",
        "tunnel": "", "reachable": True}})
    assert [(r.rule_id, r.status) for r in results] == [("crypto.cleartext.telnet", "passed")]
