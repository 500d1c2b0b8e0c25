"""The lab lock (no root, no lab): `up`/`down` of the shared lab run one at a time.

Root cause of the flaky `up` after `down`: a second `up` (another engineer's test session)
starting while the first was still starting hosts tore the half-started lab down and started
its own, so both failed with "host core-switch exited while starting".  These tests pin the
lock's behaviour with real processes and a real lock file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.manager import USERS, exclusive, shared
from lab.netns import LabError

REPO = Path(__file__).resolve().parents[2]


def hold(lock: Path, seconds: float, how: str = "exclusive") -> subprocess.Popen[str]:
    """Another process holding the lock (`how`: exclusive, or shared as a claim) for `seconds`; returns once it
    holds it."""
    code = (f"import sys, time; from pathlib import Path; from lab.manager import {how}\n"
            f"with {how}(Path(sys.argv[1]), progress=lambda _m: None):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock), str(seconds)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@contextlib.contextmanager
def held_meanwhile(lock: Path, how: str = "exclusive") -> Iterator[subprocess.Popen[str]]:
    """Another process holds the lock (as `hold`) for the whole block; killed at its end."""
    holder = hold(lock, 60, how)
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait()


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
    with held_meanwhile(lock) as holder:
        t0 = time.monotonic()
        with pytest.raises(LabError) as err, exclusive(lock, progress=lambda _m: None, timeout=0.5):
            pass
        assert time.monotonic() - t0 < 3
        assert str(err.value) == f"another `lab up`/`lab down` (pid {holder.pid}) still holds {lock}"


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


# -- claims: whatever sends packets to the lab holds a shared lock, and `lab down` waits for all of them ---------

def claim(lock: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding a shared claim on `lock` for `seconds` (a test session, a `lab use`)."""
    return hold(lock, seconds, how="shared")


def test_down_waits_for_every_claim_and_names_the_claimants(tmp_path: Path) -> None:
    users = tmp_path / "lab.users"
    first, second = claim(users, 1.0), claim(users, 2.0)    # two sessions scanning the lab at once
    said: list[str] = []
    t0 = time.monotonic()
    with exclusive(users, progress=said.append, timeout=20, who=USERS):
        waited = time.monotonic() - t0
        # both claimants are gone by now: `down` never ran under a scan
        assert first.poll() == 0 and second.poll() == 0
    assert 1.5 < waited < 10
    assert said == [f"waiting for {USERS} to finish (pid {', '.join(map(str, sorted([first.pid, second.pid])))})"]


def test_claims_do_not_wait_for_each_other(tmp_path: Path) -> None:
    users = tmp_path / "lab.users"
    with held_meanwhile(users, how="shared"):
        said: list[str] = []
        with shared(users, progress=said.append, timeout=0.5):
            pass
        assert said == []


def test_a_claim_waits_while_the_lab_goes_down(tmp_path: Path) -> None:
    users = tmp_path / "lab.users"
    with held_meanwhile(users) as down:   # a `lab down` in progress holds the users' lock exclusively
        with pytest.raises(LabError) as err, shared(users, progress=lambda _m: None, timeout=0.5):
            pass
        assert str(err.value) == f"a `lab down` (pid {down.pid}) still holds {users}"


def test_a_claimant_may_take_the_lab_down_itself_and_keeps_its_claim(tmp_path: Path) -> None:
    users = tmp_path / "lab.users"
    with shared(users, progress=lambda _m: None, timeout=1):
        with exclusive(users, progress=lambda _m: None, timeout=1, who=USERS):
            pass    # upgraded in place: our own claim does not hold us back
        # downgraded again: another process's `down` still has to wait for us
        with pytest.raises(subprocess.CalledProcessError):
            subprocess.run([sys.executable, "-c",
                            "import sys; from pathlib import Path; from lab.manager import exclusive\n"
                            "with exclusive(Path(sys.argv[1]), progress=lambda _m: None, timeout=0.5): pass",
                            str(users)], cwd=REPO, check=True, capture_output=True, timeout=30)
