"""host.snapshot and host.host-key against the lab: exact (host, rule, port) sets from
lab/expected-findings.yaml for the authenticated rules, on his, emr-db, core-switch, backup and hardened."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.store import Store
from tests.helpers import expected, scan, triples

HOSTS = ("his", "emr-db", "core-switch", "backup", "hardened")
# every rule that reads host.snapshot / host.host-key
RULES = ("accounts.empty-password", "accounts.duplicate-uid0", "accounts.md5-password-hash",
         "accounts.password-policy", "accounts.no-lockout", "accounts.idle-timeout",
         "accounts.ssh-root-password-login", "accounts.ssh-password-only", "accounts.stale-account",
         "audit.no-audit-daemon", "audit.no-remote-log", "audit.log-retention", "hardening.ssh-no-source-limit",
         "hardening.pending-security-updates", "hardening.no-firewall", "hardening.shadow-permissions",
         "hardening.world-writable-etc", "hardening.no-time-sync", "hardening.no-antimalware",
         "hardening.host-key-changed")


@pytest.fixture(scope="module")
def lab_scan(lab, tmp_path_factory):
    db = tmp_path_factory.mktemp("hostlab") / "scan.db"
    by_name = {h["name"]: h["address"] for h in lab["hosts"]}
    scan_id, found = scan([by_name[h] for h in HOSTS], scope=[lab["subnet"]], db=db, checks=["host"],
                          inventory=lab["inventory"], credentials=lab["credentials"], known_hosts=Path(db).with_suffix(".kh"))
    return scan_id, found, db, by_name


@pytest.mark.lab
def test_lab_findings_exact(lab, lab_scan):
    _, found, _, _ = lab_scan
    got = {t for t in triples(found, lab) if t[1] in RULES}
    assert got == {e for e in expected(RULES, HOSTS) if e[1] in RULES}
    assert not {t for t in got if t[0] == "hardened"}      # the reference host yields none of these rules


@pytest.mark.lab
def test_lab_every_snapshot_completes_and_nothing_fails_on_hardened(lab, lab_scan):
    scan_id, _, db, by_name = lab_scan
    store = Store(db)
    attempts = {(a["address"], a["check_id"]): a for a in store.attempts(scan_id)}
    for h in HOSTS:
        assert attempts[(by_name[h], "host.snapshot")]["status"] == "completed", h
        assert attempts[(by_name[h], "host.host-key")]["status"] == "completed", h
    # the reference host has every tool the snapshot reads: each rule assessed, and passed
    verdicts = {r.rule_id: (r.status, r.reason) for r in store.rule_results(scan_id)
                if r.address == by_name["hardened"] and r.rule_id in RULES}
    assert verdicts == {rule: ("passed", "") for rule in RULES}
