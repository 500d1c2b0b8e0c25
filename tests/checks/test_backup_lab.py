"""Backup family against the lab: exact (host, rule, port) sets for his, emr-db, backup and hardened."""

from __future__ import annotations

import pytest

from tests.helpers import expected, scan, tcmscan, triples

pytestmark = pytest.mark.lab
HOSTS = ("his", "emr-db", "backup", "hardened")
WANT = {
    ("his", "backup.missing", None),
    ("emr-db", "backup.stale", None), ("emr-db", "backup.no-offsite", None), ("emr-db", "backup.unencrypted", None),
    ("emr-db", "backup.no-integrity", None), ("emr-db", "backup.no-restore-test", None),
    ("emr-db", "backup.writable-store", None),
    ("backup", "backup.exposed-rsync", 873),
}


def test_backup_family_on_lab(lab, lab_host, tmp_path):
    scan_id, found = scan([lab_host(h) for h in HOSTS], scope=[lab["subnet"]], db=tmp_path / "lab.db",
                          checks=["backup"], inventory=lab["inventory"], credentials=lab["credentials"])
    got = {t for t in triples(found, lab) if t[1].startswith("backup.")}
    # on a difference, what each attempt ended as (a check not assessed says why)
    attempts = tcmscan("attempts", scan_id, db=tmp_path / "lab.db", check=True).stdout
    assert got == WANT, attempts
    # the lab's ground truth file agrees
    assert expected(("backup.",), HOSTS) == WANT
