"""The database's schema history: one function per version, applied in order, never edited once released."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["scans"].create({
        "id": str, "created": str, "started": str, "finished": str, "status": str, "phase": str,
        "targets": str, "scope": str, "exclude": str, "settings": str, "inventory": str,
        "profile_id": str, "profile_version": str, "profile_sha256": str, "tool_version": str,
        "check_versions": str, "error": str}, pk="id")
    db["assets"].create({
        "scan_id": str, "address": str, "name": str, "mac": str, "class": str, "class_evidence": str,
        "role": str, "zone": str, "criticality": int, "owner": str, "fragile": int, "internet_facing": int,
        "extra": str}, pk=("scan_id", "address"), foreign_keys=[("scan_id", "scans", "id")])
    db["services"].create({
        "scan_id": str, "address": str, "port": int, "proto": str, "name": str, "product": str,
        "version": str, "extrainfo": str, "tunnel": str, "source": str},
        pk=("scan_id", "address", "port", "proto"))
    db["attempts"].create({
        "id": str, "scan_id": str, "check_id": str, "check_version": str, "address": str, "port": int,
        "status": str, "reason": str, "detail": str, "duration": float, "finished": str}, pk="id")
    db["attempts"].create_index(["scan_id", "status"])
    db["observations"].create({
        "id": int, "scan_id": str, "attempt_id": str, "check_id": str, "address": str, "port": int,
        "key": str, "data": str}, pk="id")
    db["observations"].create_index(["scan_id", "check_id"])
    db["findings"].create({
        "scan_id": str, "fingerprint": str, "rule_id": str, "check_id": str, "address": str, "port": int,
        "severity": str, "area": str, "title_zh": str, "title_en": str, "clauses": str, "evidence": str,
        "evidence_key": str, "remediation": str, "basis": str, "capability": str, "status": str,
        "waiver": str}, pk=("scan_id", "fingerprint"))
    db["rule_results"].create({
        "scan_id": str, "rule_id": str, "address": str, "status": str, "reason": str},
        pk=("scan_id", "rule_id", "address"))
    db["waivers"].create({
        "id": int, "rule_id": str, "host": str, "port": int, "owner": str, "reason": str, "expires": str,
        "created": str}, pk="id")
    db["events"].create({"id": int, "scan_id": str, "time": str, "address": str, "message": str}, pk="id")


def _m2_job_runs(db: sqlite_utils.Database) -> None:
    # Scheduled runs (scanner/schedule/run.py): which scan belongs to which job, so a dead run is resumed, the diff
    # is against the job's own previous scan, and retention prunes only the job's scans. One row per scan.
    db["job_runs"].create({
        "scan_id": str, "job": str, "started": str, "finished": str, "status": str, "runs": int,
        "previous_scan_id": str, "report_dir": str, "report_status": str, "summary": str,
        "notifications": str, "error": str}, pk="scan_id")
    db["job_runs"].create_index(["job", "started"])


def _m3_finding_risk(db: sqlite_utils.Database) -> None:
    # The GB/T 20984 figures computed at evaluation (JSON of grading.Risk.to_dict), so reports render them
    # instead of re-grading. Rows from before stay NULL: readers grade those on read (grading.stored_findings).
    db["findings"].add_column("risk", str)


# Append only: a migration once released is never edited.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "initial schema", _m1_initial),
    (2, "scheduled job runs", _m2_job_runs),
    (3, "risk stored with each finding", _m3_finding_risk),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
