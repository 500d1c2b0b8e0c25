"""`tcmscan run JOB` (what a timer calls) killed with SIGKILL at 20 moments drawn from a printed seed
(TCMSCAN_CRASH_SEED replays them), spread over the measured length of the same run: every time the database
passes `PRAGMA integrity_check`, the job's earlier scan and its signed bundle are intact, every bundle directory
present verifies (never a half-written one), and the next run ends with exactly the findings of an uninterrupted
run and a bundle that verifies. Real services on loopback addresses of their own, real nmap, real signing."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from reports.signing import ED_PUBLIC, load_public_key, verify_bundle
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

JOB = "crash"
SERVICES = ((23, b"\xff\xfb\x01\xff\xfb\x03login: "), (21, b"220 archive FTP ready\r\n"), (6379, None), (873, None))


@pytest.fixture(scope="module")
def hosts():
    with listening_hosts(2, SERVICES) as addresses:
        yield addresses


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    (d / "pass").write_text("correct horse battery staple\n")
    p = tcmscan("keys", "generate", "--out", str(d / "k"), "--passphrase-file", str(d / "pass"))
    assert p.returncode == 0, p.stderr
    return d


def config(state: Path, hosts: list[str], keys: Path) -> Path:
    cfg = state.parent / f"{state.name}.toml"
    cfg.write_text(f"""data_dir = "{state}"
[[job]]
name = "{JOB}"
targets = {hosts!r}
scope = {[f"{h}/32" for h in hosts]!r}
checks = ["ports.open"]
known_hosts = "{state}/known_hosts"
[job.report]
formats = ["json", "csv"]
langs = ["en"]
sign_key = "{keys}/k/tcmscan-signing-key.pem"
passphrase_file = "{keys}/pass"
[job.retention]
keep_scans = 100
""")
    return cfg


def fresh_state(src: Path, dst: Path) -> None:
    """A copy of a job's data directory: its files, and its database through SQLite's backup."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("tcmscan.db*", "*.lock"))
    copy_db(src / "tcmscan.db", dst / "tcmscan.db")


def bundle_problems(state: Path, pub) -> dict[str, list[str]]:
    """Every entry under the job's report directory that a user or a notification would open
    (reports/JOB/SCAN/LANG): its verification problems, [] for a complete signed bundle."""
    out = {}
    root = state / "reports" / JOB
    for scan_dir in sorted(root.iterdir()) if root.exists() else []:
        for entry in sorted(scan_dir.iterdir()):
            if not entry.name.startswith("."):          # hidden: a killed run's staging, never a bundle
                out[f"{scan_dir.name}/{entry.name}"] = verify_bundle(entry, [pub])[0]
    return out


def last_run(db: Path) -> tuple:
    return rows(db, "SELECT scan_id, status, report_status FROM job_runs ORDER BY started DESC, rowid DESC")[0]


def test_run_killed_at_20_moments_leaves_a_sound_database_and_only_whole_bundles(hosts, keys, tmp_path):
    pub = load_public_key(keys / "k" / ED_PUBLIC)
    state0 = tmp_path / "state0"                       # the job's first, complete run
    p = tcmscan("run", JOB, "--config", str(config(state0, hosts, keys)))
    assert p.returncode == 0, p.stderr
    earlier = last_run(state0 / "tcmscan.db")[0]
    earlier_rows = finding_rows(state0 / "tcmscan.db", earlier)
    reference = finding_facts(state0 / "tcmscan.db", earlier)
    foreign = wildcard_ports()                         # another program's listener shows on every 127.x address
    assert sorted((f[2], f[1], f[3]) for f in reference if f[3] not in foreign) == sorted(
        [(h, "crypto.cleartext.telnet", 23) for h in hosts] + [(h, "crypto.cleartext.ftp", 21) for h in hosts]
        + [(h, "hardening.risky-port", port) for h in hosts for port, _ in SERVICES])
    assert bundle_problems(state0, pub) == {f"{earlier}/en": []}

    def reference_run(i: int) -> None:
        state = tmp_path / f"ref{i}"
        fresh_state(state0, state)
        p = tcmscan("run", JOB, "--config", str(config(state, hosts, keys)))
        assert p.returncode == 0, p.stderr
        assert finding_facts(state / "tcmscan.db", last_run(state / "tcmscan.db")[0]) == reference
        shutil.rmtree(state)

    duration = timed(reference_run)
    seed, rng = crash_rng("run JOB")
    moments = kill_moments(rng, duration)

    def trial(i: int) -> str:
        state = tmp_path / f"k{i}"
        cfg = config(state, hosts, keys)
        at, k = kill_at(tcmscan_cmd("run", JOB, "--config", str(cfg)), moments[i],
                        prepare=lambda: fresh_state(state0, state))
        why = f"seed {seed}, kill {i} at {at:.2f} s of {duration:.2f} s"
        assert k.killed, f"{why}: the run ended before any kill ({k.returncode}: {k.stderr})"
        db = state / "tcmscan.db"
        assert integrity(db) == ["ok"], why
        assert finding_rows(db, earlier) == earlier_rows, f"{why}: the earlier scan's findings changed"
        bundles = bundle_problems(state, pub)
        assert all(problems == [] for problems in bundles.values()), f"{why}: {bundles}"
        assert earlier + "/en" in bundles, why
        where = _where(db, earlier, bundles)

        p = tcmscan("run", JOB, "--config", str(cfg))          # the next timer run finishes what was left
        assert p.returncode == 0, f"{why}: {p.stderr}"
        sid, status, report = last_run(db)
        assert (status, report) == ("done", "ok"), why
        assert integrity(db) == ["ok"], why
        assert finding_facts(db, sid) == reference, why
        assert finding_rows(db, earlier) == earlier_rows, why
        # a bundle for every run that is done (the killed one too, when it was killed after its end), each whole
        done = rows(db, "SELECT scan_id FROM job_runs WHERE status = 'done'")
        assert bundle_problems(state, pub) == {f"{s}/en": [] for (s,) in done}, why
        shutil.rmtree(state)
        return where

    seen = Counter(in_pairs(trial, KILLS))
    print(f"run JOB: {KILLS} kills over {duration:.2f} s; the killed run was at: {dict(seen)}")
    assert len(seen) >= 2 and sum(n for where, n in seen.items() if not where.startswith("before")) >= KILLS // 2, \
        f"seed {seed}: kills fell only in {dict(seen)}"


def _where(db: Path, earlier: str, bundles: dict[str, list[str]]) -> str:
    """Where the kill caught the run: before its job_runs row, in which scan phase, or reporting."""
    runs = rows(db, "SELECT scan_id, status FROM job_runs WHERE scan_id != ?", (earlier,))
    if not runs:
        return "before its run row"
    phase = rows(db, "SELECT phase FROM scans WHERE id = ?", (runs[0][0],))
    if not phase:
        return "before its scan row"
    if phase[0][0] != "done":
        return f"scan {phase[0][0]}"
    if runs[0][1] == "done":
        return "run done (pruning)"
    return "reports written" if len(bundles) > 1 else "scan done, reports not yet"
