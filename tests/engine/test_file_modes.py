"""The scanner's own files hold every finding and its evidence: the SQLite database (and its -wal/-shm), the
directories tcmscan creates for it, a scheduled job's data directory, locks and run state are 0600 / 0700
whatever the umask — checked with os.stat after a real `tcmscan scan` and a real `tcmscan run JOB` into
fresh paths, run under umask 000 (the worst an operator's shell can hand us). Directories that already
existed are someone else's: their mode is left as it was."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scanner.store import Store
from tests.helpers import tcmscan

HOST = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_scan_creates_private_database_and_directories(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    db = shared / "new" / "deeper" / "scan.db"
    with umask(0):
        p = tcmscan("scan", HOST, "--scope", f"{HOST}/32", "--checks", "ports.open", "--no-ping", "--quiet",
                    "--known-hosts", str(shared / "new" / "kh"), db=db)
    assert p.returncode == 0, p.stderr
    assert {str(x.relative_to(tmp_path)): oct(mode(x)) for x in [shared, *sorted(shared.rglob("*"))]} == {
        "shared": "0o755",                      # existed before: not ours to change
        "shared/new": "0o700", "shared/new/deeper": "0o700", "shared/new/deeper/scan.db": "0o600"}


def test_wal_and_shm_follow_the_database(tmp_path):
    with umask(0):
        store = Store(tmp_path / "db" / "t.db")
        try:
            store.create_scan({"id": "s20250101-000000-abcd", "created": "2025-01-01T00:00:00+00:00",
                               "status": "running"})
            names = {x.name: oct(mode(x)) for x in (tmp_path / "db").iterdir()}
        finally:
            store.close()
    assert names == {"t.db": "0o600", "t.db-wal": "0o600", "t.db-shm": "0o600"}
    assert oct(mode(tmp_path / "db")) == "0o700"


def test_existing_database_keeps_its_mode(tmp_path):
    # an operator who made the file group-readable for the auditors' group chose that: it is not changed
    db = tmp_path / "shared.db"
    Store(db).close()
    db.chmod(0o640)
    Store(db).close()
    assert oct(mode(db)) == "0o640"


def test_job_run_data_dir_locks_and_state(tmp_path):
    tmp_mode = mode(tmp_path)                   # existed before: not ours to change
    state = tmp_path / "state"
    cfg = tmp_path / "jobs.toml"
    cfg.write_text(f'data_dir = "{state}"\n[[job]]\nname = "modes"\ntargets = ["{HOST}"]\nscope = ["{HOST}/32"]\n'
                   'checks = ["ports.open"]\nping = false\n[job.report]\nformats = ["json"]\nlangs = ["en"]\n')
    with umask(0):
        p = tcmscan("run", "modes", "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    assert [(str(x.relative_to(tmp_path)), oct(mode(x))) for x in (tmp_path, state, state / "locks",
                                                                 state / "locks/modes.lock", state / "tcmscan.db")] == [
        (".", oct(tmp_mode)), ("state", "0o700"), ("state/locks", "0o700"), ("state/locks/modes.lock", "0o600"),
        ("state/tcmscan.db", "0o600")]
