"""Crash tests' common parts: kill moments from a seed the test prints (TCMSCAN_CRASH_SEED replays them), a
command killed with SIGKILL at a moment, a copy of a database, its integrity check, and a process that SIGKILLs
itself at its N-th file-system step (a Python audit hook), for the steps too short to hit by time."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.helpers import ROOT

T = TypeVar("T")

SEED_ENV = "TCMSCAN_CRASH_SEED"
KILLS = 20                      # the number, per command
PAIRS = 2                       # trials run two at a time (CI has 2 cores); durations are measured the same way


def crash_rng(what: str) -> tuple[int, random.Random]:
    """A seeded RNG for one test's kill moments; the seed is printed (pytest shows it with the failure)."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1 << 32))
    print(f"{what}: crash seed {seed} (replay: {SEED_ENV}={seed})")
    return seed, random.Random(seed)


def kill_moments(rng: random.Random, duration: float, n: int = KILLS) -> list[float]:
    """n moments spread over [0, duration): one drawn uniformly in each of n equal slices."""
    return [(i + rng.random()) * duration / n for i in range(n)]


def in_pairs(trial: Callable[[int], T], n: int) -> list[T]:
    """trial(0..n-1), PAIRS at a time, in order; the first failure is raised as it was."""
    with ThreadPoolExecutor(max_workers=PAIRS) as pool:
        return [f.result() for f in [pool.submit(trial, i) for i in range(n)]]


def timed(run: Callable[[int], object]) -> float:
    """The mean length of `run(i)` for PAIRS runs side by side: the kill moments spread over this."""
    def one(i: int) -> float:
        t0 = time.monotonic()
        run(i)
        return time.monotonic() - t0

    return sum(in_pairs(one, PAIRS)) / PAIRS


def tcmscan_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "scanner.cli", *args]


@dataclass
class Killed:
    killed: bool                # False: the command had ended before the moment came
    returncode: int
    stderr: str


def run_killed(cmd: list[str], at: float) -> Killed:
    """Start `cmd` in a process group of its own and SIGKILL the group (nmap included) `at` seconds later."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(timeout=at)
        return Killed(False, p.returncode, err)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        return Killed(True, p.returncode, err)


def kill_at(cmd: list[str], at: float, prepare: Callable[[], object] = lambda: None,
            shorter: float = 0.5) -> tuple[float, Killed]:
    """run_killed after `prepare()` (a fresh copy of the state), moving the moment earlier (x `shorter`) and
    starting over while the command ends before it: every moment a kill. Returns the moment used."""
    while True:
        prepare()
        k = run_killed(cmd, at)
        if k.killed or at < 0.05:
            return at, k
        at *= shorter


def copy_db(src: Path, dst: Path) -> Path:
    """A consistent copy (SQLite's backup API), never a byte copy of a file in use."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def integrity(db: Path) -> list[str]:
    c = sqlite3.connect(db)
    try:
        return [r[0] for r in c.execute("PRAGMA integrity_check")]
    finally:
        c.close()


def rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def finding_rows(db: Path, scan_id: str) -> list[tuple]:
    """Every stored column of a scan's findings but the scan id, sorted: "no finding lost" compares these."""
    return sorted(r[1:] for r in rows(db, "SELECT * FROM findings WHERE scan_id = ?", (scan_id,)))


def finding_facts(db: Path, scan_id: str) -> list[tuple]:
    """What two scans of the same services must agree on: fingerprint, rule, host, port, severity, evidence,
    status (a scan's own ids and times differ)."""
    return sorted(rows(db, "SELECT fingerprint, rule_id, address, port, severity, evidence, status FROM findings "
                           "WHERE scan_id = ?", (scan_id,)))


# A process that SIGKILLs itself at its N-th file-system step once it touches `ARM` (a path prefix): the steps
# are the audit events below, raised just before the call, so kill N leaves exactly steps 1..N-1 done.
_STEPS = ("open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.chmod", "os.listdir", "shutil.rmtree",
          "os.truncate", "os.link", "os.symlink")
SELF_KILL = f"""
import os, signal, sys
arm, n = sys.argv[1], int(sys.argv[2])
state = {{"armed": False, "count": 0}}
def hook(event, args):
    if event not in {_STEPS!r}:
        return
    path = args[0] if args else None
    if not state["armed"]:
        if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(arm):
            state["armed"] = True
        else:
            return
    state["count"] += 1
    if state["count"] == n:
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from scanner.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def self_killed_at(step: int, arm: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run `tcmscan ARGS`, SIGKILLed at file-system step `step` counted from the first that touches `arm`."""
    return subprocess.run([sys.executable, "-c", SELF_KILL, str(arm), str(step), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
