"""The whole lab scanned as a hospital would scan it, compared with lab/expected-findings.yaml exactly:
every expected finding present, nothing unexpected, and nothing at all on the hardened host. The firewall
and pending-update rules, planted both ways, are assessed on every host the snapshot logs in to."""

from __future__ import annotations

import json

import pytest

from scanner.store import Store
from tests.helpers import expected, scan, tcmscan, triples

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab_scan(lab, tmp_path_factory):
    db = tmp_path_factory.mktemp("lab") / "lab.db"
    scan_id, found = scan([lab["subnet"]], scope=[lab["subnet"]], db=db, inventory=lab["inventory"],
                          credentials=lab["credentials"],
                          extra=["--exclude", lab.get("gateway", "10.77.0.1"), "--ca-file", lab["ca"]])
    return db, scan_id, found


def test_findings_equal_the_ground_truth(lab, lab_scan):
    _, _, found = lab_scan
    got = triples(found, lab)
    want = expected()
    assert sorted(got - want, key=str) == [], "unexpected findings"
    assert sorted(want - got, key=str) == [], "missed findings"


def test_hardened_host_is_clean_and_fully_assessed(lab, lab_scan):
    db, scan_id, found = lab_scan
    hardened = next(h["address"] for h in lab["hosts"] if h["name"] == "hardened")
    assert [f["rule_id"] for f in found if f["address"] == hardened] == []
    attempts = json.loads(tcmscan("attempts", scan_id, "--format", "json", db=db, check=True).stdout)
    broken = [(a["check_id"], a["port"], a["reason"], a["detail"]) for a in attempts
              if a["address"] == hardened and a["status"] in ("error", "skipped")]
    assert broken == [], "a clean result only counts when every check could run"


# Verdict per host for hardening.no-firewall and hardening.pending-security-updates (lab/topology.yaml):
# his has no ruleset and the unpatched lab-hospital-tools 1.0-1; portal has no ruleset but is current; the
# others have an nftables ruleset and are current.  The medical devices: host.snapshot never logs in to them
# (not applicable), so neither rule is "not assessed" anywhere.
HOST_RULE_VERDICTS = {
    "core-switch": ("passed", "passed"), "his": ("failed", "failed"), "emr-db": ("passed", "passed"),
    "pacs": ("not_applicable", "not_applicable"), "modality": ("not_applicable", "not_applicable"),
    "hl7": ("not_applicable", "not_applicable"), "pump": ("not_applicable", "not_applicable"),
    "backup": ("passed", "passed"), "portal": ("failed", "passed"), "hardened": ("passed", "passed"),
    "sm-gw": ("passed", "passed"),
}


def test_firewall_and_updates_assessed_both_ways(lab, lab_scan):
    db, scan_id, _ = lab_scan
    name = {h["address"]: h["name"] for h in lab["hosts"]}
    verdicts = {(name[r.address], r.rule_id): r.status for r in Store(db).rule_results(scan_id)}
    got = {h: (verdicts[(h, "hardening.no-firewall")], verdicts[(h, "hardening.pending-security-updates")])
           for h in HOST_RULE_VERDICTS}
    assert got == HOST_RULE_VERDICTS


def test_planted_evidence(lab, lab_scan):
    """What the scanner saw of the three plants that replaced facts of the mirror or of no plant at all."""
    _, _, found = lab_scan
    his = next(h["address"] for h in lab["hosts"] if h["name"] == "his")
    ev = {f["rule_id"]: f["evidence"] for f in found if f["address"] == his}
    assert ev["hardening.no-firewall"] == {"tool": "nft", "rules": 0, "input_policy": None}
    updates = ev["hardening.pending-security-updates"]
    assert (updates["packages"], updates["count"]) == (["lab-hospital-tools 1.0-2"], 1)
    redis = ev["hardening.vulnerable-version"]
    assert (redis["product"], redis["version"], redis["cves"], redis["max_cvss"]) == (
        "Redis key-value store", "6.2.14", ["CVE-2025-49844"], 9.9)


def test_no_attempt_failed_for_a_bug(lab_scan):
    db, scan_id, _ = lab_scan
    attempts = json.loads(tcmscan("attempts", scan_id, "--format", "json", db=db, check=True).stdout)
    assert [(a["address"], a["check_id"], a["detail"]) for a in attempts if a["reason"] == "bug"] == []
