"""The whole lab scanned as a hospital would scan it, compared with lab/expected-findings.yaml exactly:
every expected finding present, nothing unexpected, and nothing at all on the hardened host."""

from __future__ import annotations

import json

import pytest

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


def test_no_attempt_failed_for_a_bug(lab_scan):
    db, scan_id, _ = lab_scan
    attempts = json.loads(tcmscan("attempts", scan_id, "--format", "json", db=db, check=True).stdout)
    assert [(a["address"], a["check_id"], a["detail"]) for a in attempts if a["reason"] == "bug"] == []
