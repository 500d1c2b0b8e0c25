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
