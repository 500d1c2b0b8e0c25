"""A full disk while writing the database or a report: one clear line, exit 3, the earlier scans (and an
earlier bundle) intact; once there is room again the scan resumes to the findings it would have had. The disk
is a small tmpfs the test mounts (root) and fills; real services on loopback, real nmap, real SQLite."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.crash import copy_db, finding_facts, finding_rows, integrity, rows
from tests.helpers import tcmscan
from tests.loopback import listening_hosts
from tests.schedule.servers import WebhookReceiver

SERVICES = ((23, b"\xff\xfb\x01\xff\xfb\x03login: "), (21, b"220 archive FTP ready\r\n"), (873, None),
            (3306, None), (6379, None))
DISK_FULL = (r"database {db}: the disk is full \(\d+ KiB free\): the last write was not stored, what was stored "
             r"before is intact")


@pytest.fixture(scope="module")
def hosts():
    with listening_hosts(2, SERVICES) as addresses:
        yield addresses


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs of the test's own, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tcmscan-test", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` but `leave` bytes; the filler file (delete it to make room again)."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def scan_args(hosts: list[str], db: Path) -> list[str]:
    scope = [x for h in hosts for x in ("--scope", f"{h}/32")]
    return ["scan", *hosts, *scope, "--checks", "ports", "--known-hosts", f"{db}.kh", "-q"]


@pytest.fixture(scope="module")
def earlier(hosts, tmp_path_factory):
    """A database on an ordinary disk holding one complete scan of `hosts`: (path, scan id)."""
    db = tmp_path_factory.mktemp("earlier") / "t.db"
    p = tcmscan(*scan_args(hosts, db), db=db)
    assert p.returncode == 1, p.stderr
    return db, p.stdout.strip()


@pytest.mark.parametrize("leave_kib", [0, 96, 160], ids=["no room to open", "room for a part", "room for more"])
def test_scan_into_a_full_disk_is_one_line_exit_3_and_the_earlier_scan_is_intact(hosts, earlier, small_disk,
                                                                                 leave_kib):
    base, first = earlier
    db = copy_db(base, small_disk / "t.db")
    before = finding_rows(db, first)
    filler = fill(small_disk, leave_kib * 1024)
    p = tcmscan(*scan_args(hosts, db), db=db)
    assert p.returncode == 3, p.stderr
    assert re.fullmatch("tcmscan: " + DISK_FULL.format(db=re.escape(str(db))) + "\n", p.stderr), p.stderr
    filler.unlink()             # room again (even reading a WAL database makes its -shm file), the file as it was
    assert integrity(db) == ["ok"]
    assert finding_rows(db, first) == before
    killed = rows(db, "SELECT id FROM scans WHERE id != ?", (first,))
    if leave_kib == 0:
        assert killed == []                             # it stopped before it wrote anything
        return
    ((scan_id,),) = killed
    r = tcmscan("scan", "--resume", scan_id, "-q", db=db)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (1, scan_id, "")
    assert finding_facts(db, scan_id) == finding_facts(db, first)
    assert integrity(db) == ["ok"]


def test_report_into_a_full_disk_is_one_line_exit_3_and_leaves_out_as_it_was(earlier, small_disk):
    db, first = earlier
    out = small_disk / "bundle"
    args = ["report", first, "--format", "html,json,csv,sarif", "--lang", "en", "--out", str(out)]
    assert tcmscan(*args, db=db).returncode == 0
    bundle = {p.name: p.read_bytes() for p in out.iterdir()}
    filler = fill(small_disk, 16 * 1024)
    for what, target, extra in (("a new --out", small_disk / "new", []), ("--force over a bundle", out, ["--force"])):
        p = tcmscan(*args[:-1], str(target), *extra, db=db)
        assert p.returncode == 3, f"{what}: {p.stderr}"
        assert re.fullmatch(rf"tcmscan: cannot write {re.escape(str(target))}/[a-z.]+: No space left on device; "
                            r"--out is left as it was\n", p.stderr), f"{what}: {p.stderr}"
    assert sorted(p.name for p in small_disk.iterdir()) == ["bundle", "filler"]     # no staging left behind
    assert {p.name: p.read_bytes() for p in out.iterdir()} == bundle
    filler.unlink()
    assert tcmscan(*args[:-1], str(out), "--force", db=db).returncode == 0


def test_a_scheduled_run_on_a_full_disk_says_so_alerts_and_resumes(hosts, earlier, small_disk, tmp_path):
    """`tcmscan run JOB` with its data directory on the full disk: exit 3 and one line naming the job, the alert
    still goes out (the failure is not recorded, there is no room), and the next run with room resumes."""
    rx = WebhookReceiver()
    state = small_disk / "state"
    cfg = tmp_path / "jobs.toml"
    cfg.write_text(f"""data_dir = "{state}"
[[job]]
name = "full"
targets = {hosts!r}
scope = {[f"{h}/32" for h in hosts]!r}
checks = ["ports.open"]
[job.report]
formats = ["json"]
langs = ["en"]
[job.notify]
min_severity = "high"
timeout = 2
retries = 1
webhook = [{{url = "{rx.url}"}}]
""")
    try:
        state.mkdir()
        copy_db(earlier[0], state / "tcmscan.db")     # the database exists, with room for a part of the scan
        filler = fill(small_disk, 160 * 1024)
        p = tcmscan("run", "full", "--config", str(cfg))
        assert p.returncode == 3, p.stderr
        line = p.stderr.splitlines()
        assert len(line) == 1 and re.fullmatch(
            r"tcmscan: job full: scan (s[\d-]+-[0-9a-f]{4}) failed: " + DISK_FULL.format(
                db=re.escape(str(state / "tcmscan.db"))) + r" \(the next run resumes it\)", line[0]), p.stderr
        scan_id = re.match(r"tcmscan: job full: scan (\S+) failed", line[0]).group(1)
        ((note,),) = [[r["json"] for r in rx.requests]]
        assert (note["job"], note["scan_id"], note["status"]) == ("full", scan_id, "failed")
        assert re.fullmatch(DISK_FULL.format(db=re.escape(str(state / "tcmscan.db"))), note["error"])
        filler.unlink()
        assert integrity(state / "tcmscan.db") == ["ok"]
        assert finding_rows(state / "tcmscan.db", earlier[1]) == finding_rows(earlier[0], earlier[1])

        p = tcmscan("run", "full", "--config", str(cfg))
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith(f"job full: scan {scan_id} done (resumed); ")
        assert finding_facts(state / "tcmscan.db", scan_id) == finding_facts(earlier[0], earlier[1])
        assert json.loads((state / f"reports/full/{scan_id}/en/report.json").read_text())["scan"]["id"] == scan_id
    finally:
        rx.close()


def test_fill_leaves_what_it_is_asked_to(small_disk):
    """The helper the tests above rely on: after fill(leave=0), writing one more page fails with ENOSPC."""
    fill(small_disk, 0)
    with pytest.raises(OSError) as e, open(small_disk / "more", "wb") as f:
        f.write(b"x" * 8192)
        f.flush()
        os.fsync(f.fileno())
    assert e.value.errno == errno.ENOSPC
    with contextlib.suppress(FileNotFoundError):
        (small_disk / "more").unlink()
