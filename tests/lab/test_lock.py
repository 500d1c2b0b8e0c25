"""The lab lock (no root, no lab): `up`/`down` of the shared lab run one at a time.

Root cause of the flaky `up` after `down`: a second `up` (another engineer's test session)
starting while the first was still starting hosts tore the half-started lab down and started
its own, so both failed with "host core-switch exited while starting".  These tests pin the
lock's behaviour with real processes and a real lock file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.manager import exclusive
from lab.netns import LabError

REPO = Path(__file__).resolve().parents[2]


def hold(lock: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the lock for `seconds`; returns once it holds it."""
    code = ("import sys, time; from pathlib import Path; from lab.manager import exclusive\n"
            "with exclusive(Path(sys.argv[1]), progress=lambda _m: None):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock), str(seconds)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_caller_waits_and_says_who_holds_it(tmp_path: Path) -> None:
    lock = tmp_path / "lab.lock"
    holder = hold(lock, 1.5)
    said: list[str] = []
    t0 = time.monotonic()
    with exclusive(lock, progress=said.append, timeout=20):
        waited = time.monotonic() - t0
        assert lock.read_text() == f"pid {os.getpid()}\n"
    assert holder.wait(timeout=10) == 0
    assert 0.8 < waited < 10
    assert said == [f"waiting for another `lab up`/`lab down` to finish (pid {holder.pid})"]


def test_gives_up_after_its_timeout(tmp_path: Path) -> None:
    lock = tmp_path / "lab.lock"
    holder = hold(lock, 5)
    try:
        t0 = time.monotonic()
        with pytest.raises(LabError) as err, exclusive(lock, progress=lambda _m: None, timeout=0.5):
            pass
        assert time.monotonic() - t0 < 3
        assert str(err.value) == f"another `lab up`/`lab down` (pid {holder.pid}) still holds {lock}"
    finally:
        holder.kill()
        holder.wait()


def test_reentrant_in_one_process_and_released_after(tmp_path: Path) -> None:
    lock = tmp_path / "lab.lock"
    said: list[str] = []
    with exclusive(lock, progress=said.append, timeout=1), exclusive(lock, progress=said.append, timeout=1):
        pass  # `up` calls `down` while holding the lock: must not deadlock
    assert said == []
    assert lock.read_text() == ""
    holder = hold(lock, 0)  # released: another process gets it at once
    assert holder.wait(timeout=10) == 0


def test_released_when_the_holder_dies(tmp_path: Path) -> None:
    lock = tmp_path / "lab.lock"
    holder = hold(lock, 60)
    holder.kill()  # a crashed `lab up`: flock goes with the process
    holder.wait()
    said: list[str] = []
    with exclusive(lock, progress=said.append, timeout=5):
        pass
    assert said == []
