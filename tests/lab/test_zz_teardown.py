"""Runs last (module order): `lab down` leaves nothing behind -- after a normal run and
after a simulated crash that lost the state file.  It takes down only the lab this session
brought up (tests/conftest.py records which `lab up` made it): a lab that was running before
the session (others use it), or that someone else brought up meanwhile, is left alone and the
test does not run (under CI that fails).  With TCMSCAN_LAB_KEEP=1 the session's lab is
brought up again at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lab_identity, leave_running

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
STATE = Path("/run/tcmscan-lab/state.json")
LOCK = Path("/var/lib/tcmscan-lab/lab.lock")


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)


def alive(pid: int) -> bool:
    """Still there after a grace period?  A killed process whose parent is the machine's
    init may stay a zombie for a moment until init reaps it; a zombie runs nothing."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        time.sleep(0.1)
    return True


def assert_nothing_left(pids: list[int]) -> None:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert [ln for ln in netns.splitlines() if ln.startswith("lab-")] == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()]
    assert [n for n in names if n.startswith("vh-") or n == "tcmlab0"] == []
    assert [p for p in pids if alive(p)] == []
    mounts = Path("/proc/mounts").read_text()
    assert "/run/tcmscan-lab" not in mounts
    assert [m for m in mounts.splitlines() if "/run/netns/lab-" in m] == []
    assert not Path("/run/tcmscan-lab/hosts").exists()
    assert not STATE.exists()


def recorded_pids() -> list[int]:
    state = json.loads(STATE.read_text())
    pids = []
    for rec in state["hosts"].values():
        pids += [int(rec["unshare_pid"]), int(rec["init_pid"])]
    return pids


def require_ours(lab_session: dict[str, Any]) -> None:
    """Go on only if the lab recorded now is the one this session brought up."""
    if lab_session["already"]:
        pytest.skip("the lab was up before this session: not ours to take down")
    if lab_identity() != lab_session["identity"]:
        pytest.skip("the lab now up is not the one this session brought up: not ours to take down")
    lab_session["claim"].close()    # our own claim would hold our `lab down` back; others' claims still do


def test_down_removes_everything(lab_session: dict[str, Any]) -> None:
    require_ours(lab_session)
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    pids = recorded_pids()
    done = lab_cli("down")
    assert done.returncode == 0, done.stderr
    assert_nothing_left(pids)
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward
    # nothing runs against the lab subnet now: it would follow the default route out of the machine
    refused = lab_cli("use", "--", "true")
    assert (refused.returncode, refused.stderr) == (1, "lab: the lab is not up: run `tcmscan lab up` first\n")


def test_concurrent_ups_then_down_after_crash(lab_session: dict[str, Any]) -> None:
    # Two `lab up` at once (two engineers, or a test session's lab fixture during someone's
    # `up`) used to tear each other's half-started hosts down: "host core-switch exited while
    # starting".  Now the second waits for the lock and finds the lab up.
    if lab_identity():                  # run on its own: the session's lab is still up
        require_ours(lab_session)
        done = lab_cli("down")
        assert done.returncode == 0, done.stderr
    assert lab_identity() == ()
    first = subprocess.Popen([sys.executable, "-m", "lab", "up"], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while LOCK.read_text() != f"pid {first.pid}\n":  # the first one holds the lock
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = lab_cli("up")
    _, first_err = first.communicate(timeout=900)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second.stderr
    assert second.stderr.splitlines()[:2] == [
        f"waiting for another `lab up`/`lab down` to finish (pid {first.pid})", "lab already up"]
    assert json.loads(lab_cli("status", "--json").stdout)["running"] is True
    pids = recorded_pids()
    STATE.unlink()  # the crash lost the record: down must find our prefixed names itself
    done = lab_cli("down")
    assert done.returncode == 0, done.stderr
    assert_nothing_left(pids)
    if leave_running(lab_session["already"]):     # TCMSCAN_LAB_KEEP=1: the session's lab stays up
        again = lab_cli("up")
        assert again.returncode == 0, again.stderr
        lab_session["status"] = json.loads(lab_cli("status", "--json").stdout)
        assert lab_session["status"]["running"] is True
        lab_session["identity"] = lab_identity()


def test_non_root_refused() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                           "-m", "lab", "up"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lab: the lab needs root (network namespaces, overlay mounts): run it as root"]
