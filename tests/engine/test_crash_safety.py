"""`tcmscan scan` killed with SIGKILL at 20 moments drawn from a printed seed (TCMSCAN_CRASH_SEED replays them),
spread over the measured length of the same scan: every time the database passes `PRAGMA integrity_check`, the
earlier scan's findings and the killed scan's finished attempts are all still there, and `--resume` ends with
exactly the findings of an uninterrupted scan. Real services on loopback addresses of their own, real nmap,
real SQLite."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.crash import (
    KILLS,
    copy_db,
    crash_rng,
    finding_facts,
    finding_rows,
    in_pairs,
    integrity,
    kill_at,
    kill_moments,
    rows,
    tcmscan_cmd,
    timed,
)
from tests.helpers import tcmscan
from tests.loopback import listening_hosts, wildcard_ports

pytestmark = pytest.mark.slow          # 20 kills and as many runs: about a minute

# Per host: a telnet-like and an FTP-like banner, three silent ports the risky-port rule judges.
SERVICES = ((23, b"\xff\xfb\x01\xff\xfb\x03login: "), (21, b"220 archive FTP ready\r\n"), (873, None),
            (3306, None), (6379, None))


@pytest.fixture(scope="module")
def hosts():
    """Three loopback addresses of their own, five listening services each."""
    with listening_hosts(3, SERVICES) as addresses:
        yield addresses


def expected(hosts: list[str]) -> list[tuple]:
    """(host, rule, port) of the findings these services give."""
    return sorted([(h, "crypto.cleartext.telnet", 23) for h in hosts] + [(h, "crypto.cleartext.ftp", 21) for h in hosts]
                  + [(h, "hardening.risky-port", port) for h in hosts for port, _ in SERVICES])


def scan_args(db: Path, hosts: list[str]) -> list[str]:
    # one worker: the 15 attempts, a write each, take a good part of the scan instead of a blink after nmap
    scope = [x for h in hosts for x in ("--scope", f"{h}/32")]
    return ["scan", *hosts, *scope, "--checks", "ports", "--workers", "1", "--known-hosts", f"{db}.kh", "-q"]


def fresh_copy(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    copy_db(src, dst)


def test_scan_killed_at_20_moments_resumes_to_the_same_findings(hosts, tmp_path):
    base = tmp_path / "base.db"                       # holds an earlier, complete scan
    p = tcmscan(*scan_args(base, hosts), db=base)
    assert p.returncode == 1, p.stderr
    earlier = p.stdout.strip()
    earlier_rows = finding_rows(base, earlier)
    foreign = wildcard_ports()                        # another program's listener shows on every 127.x address
    assert sorted((f[2], f[1], f[3]) for f in finding_facts(base, earlier) if f[3] not in foreign) == expected(hosts)

    def reference_run(i: int) -> None:
        db = copy_db(base, tmp_path / f"ref{i}.db")
        p = tcmscan(*scan_args(db, hosts), db=db)
        assert p.returncode == 1, p.stderr
        assert finding_facts(db, p.stdout.strip()) == finding_facts(base, earlier)

    duration = timed(reference_run)
    reference = finding_facts(base, earlier)
    seed, rng = crash_rng("scan")
    moments = kill_moments(rng, duration)

    def trial(i: int) -> str:
        db = tmp_path / f"k{i}.db"
        at, k = kill_at(tcmscan_cmd("--db", str(db), *scan_args(db, hosts)), moments[i], prepare=lambda: fresh_copy(base, db))
        why = f"seed {seed}, kill {i} at {at:.2f} s of {duration:.2f} s"
        assert k.killed, f"{why}: the scan ended before any kill ({k.returncode}: {k.stderr})"
        assert integrity(db) == ["ok"], why
        assert finding_rows(db, earlier) == earlier_rows, f"{why}: the earlier scan's findings changed"
        killed = rows(db, "SELECT id, status, phase FROM scans WHERE id != ?", (earlier,))
        if not killed:                                # killed before the scan's row was written: nothing to resume
            return "before the scan row"
        ((scan_id, status, phase),) = killed
        finished = rows(db, "SELECT * FROM attempts WHERE scan_id = ? AND status != 'pending'", (scan_id,))
        stored = finding_rows(db, scan_id)
        if status == "done":                          # killed after the last write: nothing left to do
            assert finding_facts(db, scan_id) == reference, why
            return phase
        r = tcmscan("scan", "--resume", scan_id, "-q", db=db)
        assert (r.returncode, r.stdout.strip()) == (1, scan_id), f"{why}: {r.stderr}"
        assert integrity(db) == ["ok"], why
        assert finding_facts(db, scan_id) == reference, f"{why} (phase {phase})"
        assert finding_rows(db, earlier) == earlier_rows, why
        after = rows(db, "SELECT * FROM attempts WHERE scan_id = ? AND status != 'pending'", (scan_id,))
        assert set(finished) <= set(after), f"{why}: an attempt finished before the kill was lost or redone"
        if stored:                                    # verdicts saved before the kill are those of the end
            assert stored == finding_rows(db, scan_id), why
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return phase

    seen = Counter(in_pairs(trial, KILLS))
    print(f"scan: {KILLS} kills over {duration:.2f} s; the killed scan was at: {dict(seen)}")
    # the moments reached the database, not only the start-up before it (nmap's discovery takes most of a
    # scan; tests/engine/test_scan_loopback.py kills one in its check phase on purpose)
    assert len(seen) >= 2 and sum(n for where, n in seen.items() if where != "before the scan row") >= KILLS // 2, \
        f"seed {seed}: kills fell only in {dict(seen)}"
