import sqlite3
import subprocess
import sys

import pytest

from scanner.core.errors import ScanFailed, UsageError
from scanner.core.models import AttemptResult, Observation
from scanner.store import MIGRATIONS, SCHEMA_VERSION, Store


def test_migrations_create_the_schema_once(tmp_path):
    s = Store(tmp_path / "a.db")
    assert s.version() == SCHEMA_VERSION == MIGRATIONS[-1][0]
    assert set(s.db.table_names()) >= {"scans", "assets", "services", "attempts", "observations", "findings",
                                       "rule_results", "waivers", "events"}
    assert s.migrate() == []     # nothing left to apply
    s.close()
    assert Store(tmp_path / "a.db").migrate() == []


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "n.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match="newer than this tcmscan"):
        Store(path)


def test_a_corrupt_file_is_a_clear_error_and_left_untouched(tmp_path):
    path = tmp_path / "c.db"
    junk = b"this is not sqlite" * 100
    path.write_bytes(junk)
    with pytest.raises(UsageError, match="is not a usable tcmscan database"):
        Store(path)
    assert path.read_bytes() == junk


def test_a_locked_database_is_a_clear_error(tmp_path):
    path = tmp_path / "l.db"
    Store(path).close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)"), str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ScanFailed, match="is locked by another process"):
            Store(path, timeout=0.5)
    finally:
        holder.kill()
        holder.wait()


def test_attempt_and_its_observations_land_together(tmp_path):
    s = Store(tmp_path / "t.db")
    s.create_scan({"id": "s1", "created": "2026-01-01", "status": "running", "phase": "planned", "scope": ["x"],
                   "targets": [], "settings": {}})
    s.add_pending("s1", [("a1", "ports.open", "1.0", "127.0.0.1", 23)])
    res = AttemptResult("a1", "ports.open", "127.0.0.1", 23, "completed",
                        observations=[Observation("ports.open", "127.0.0.1", 23, "service", {"name": "telnet"})])
    s.record_attempt("s1", res, "1.0", "2026-01-01T00:00:01")
    s.record_attempt("s1", res, "1.0", "2026-01-01T00:00:02")      # a repeat replaces, never duplicates
    assert [o.data for o in s.observations("s1")] == [{"name": "telnet"}]
    assert [(a["status"], a["finished"]) for a in s.attempts("s1")] == [("completed", "2026-01-01T00:00:02")]


def test_a_v2_database_migrates_and_its_old_findings_are_graded_on_read(tmp_path):
    """A file written before risk was stored (schema 2, built by the v2 migrations themselves): migration 3
    adds the column, old rows keep NULL, and every reader gets the figures graded on read."""
    import json

    import sqlite_utils

    from reports.formats import validate_report
    from reports.model import build
    from scanner.assess.baseline import load_profile
    from scanner.assess.grading import stored_findings

    path = tmp_path / "v2.db"
    old = sqlite_utils.Database(sqlite3.connect(path))
    for version, _name, fn in MIGRATIONS:
        if version <= 2:
            fn(old)
    old.execute("PRAGMA user_version = 2")
    p = load_profile()
    old["scans"].insert({
        "id": "s1", "created": "2025-01-01T00:00:00+00:00", "started": "2025-01-01T00:00:00+00:00",
        "finished": "2025-01-01T00:10:00+00:00", "status": "done", "phase": "done", "targets": '["10.0.0.5"]',
        "scope": '["10.0.0.5/32"]', "exclude": "[]", "settings": '{"vantage": "clinical"}', "inventory": "{}",
        "profile_id": p.id, "profile_version": p.version, "profile_sha256": p.sha256, "tool_version": "0.9",
        "check_versions": '{"ports.open": "1.0"}', "error": None})
    old["assets"].insert({"scan_id": "s1", "address": "10.0.0.5", "name": "pump", "mac": "", "class": "medical-device",
                          "class_evidence": "[]", "role": "", "zone": "clinical", "criticality": 0, "owner": "",
                          "fragile": 1, "internet_facing": 0, "extra": "{}"})
    old["findings"].insert({
        "scan_id": "s1", "fingerprint": "a" * 24, "rule_id": "crypto.cleartext.telnet", "check_id": "ports.open",
        "address": "10.0.0.5", "port": 23, "severity": "critical", "area": "crypto", "title_zh": "明文", "title_en": "t",
        "clauses": '{"gbt22239": "8.1.4.1 c"}', "evidence": '{"port": 23}', "evidence_key": "",
        "remediation": '{"zh": "关", "en": "off"}', "basis": "seen", "capability": "", "status": "open",
        "waiver": None})
    old.conn.commit()
    old.conn.close()

    s = Store(path)
    assert s.version() == SCHEMA_VERSION == 3
    assert "risk" in s.db["findings"].columns_dict
    assert [f.risk for f in s.findings("s1")] == [None]           # nothing invented in the file
    (f,) = stored_findings(s, "s1")
    # class medical-device A=4, clinical zone seen from the clinical vantage T=2, critical V=5
    assert {k: f.risk[k] for k in ("A", "T", "V", "L", "F", "R", "level_en", "cell")} == {
        "A": 4, "T": 2, "V": 5, "L": 3.16, "F": 4.47, "R": 14.14, "level_en": "medium", "cell": [3, 4]}
    assert f.risk["inputs"]["T"] == "max(zone clinical 2, vantage clinical 2) = 2"
    doc = build(s, "s1", now="2025-01-02T00:00:00+00:00")
    assert validate_report(doc) == []
    assert [(x["address"], x["risk"]["R"]) for x in doc["findings"]] == [("10.0.0.5", 14.14)]
    # a new write stores the risk with the row
    s.save_verdicts("s1", [f], [])
    assert json.loads(s.db.execute("SELECT risk FROM findings").fetchone()[0]) == f.risk
    s.close()
