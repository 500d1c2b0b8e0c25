"""`lab use -- COMMAND`: a command that sends packets to the lab (run.sh's scan) runs under a claim on the lab,
so that a `lab down` elsewhere waits for it instead of removing the lab (whose subnet would then follow the
machine's default route).  Refusal when the lab is down: tests/lab/test_zz_teardown.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import manager
from lab.netns import LabError

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def lab_use(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", "use", *command], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)


def test_runs_the_command_and_exits_with_its_status(lab) -> None:
    done = lab_use("--", "sh", "-c", "echo scanned; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "scanned\n", "")


def test_without_a_command_one_line_and_exit_2(lab) -> None:
    done = lab_use()
    assert (done.returncode, done.stderr) == (
        2, "lab: use: name the command to run: `lab use -- tcmscan scan 10.77.0.0/24 ...`\n")


def test_a_missing_command_is_one_line(lab) -> None:
    done = lab_use("--", "/nonexistent/tcmscan")
    assert done.returncode == 1
    assert done.stderr == "lab: [Errno 2] No such file or directory: '/nonexistent/tcmscan'\n"


def test_lab_down_waits_for_the_command(lab) -> None:
    user = subprocess.Popen([sys.executable, "-m", "lab", "use", "--", "sh", "-c", "echo started; sleep 30"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert user.stdout is not None and user.stdout.readline() == "started\n"
        t0 = time.monotonic()
        # what `lab down` does first; this session's own claim is set aside (upgraded in place)
        with pytest.raises(LabError) as err, manager.no_users(progress=lambda _m: None, timeout=1):
            pass
        assert time.monotonic() - t0 < 5
        assert str(err.value).startswith(f"{manager.USERS} (pid {user.pid}) still holds ")
    finally:
        user.kill()
        user.wait()
    with manager.no_users(progress=lambda _m: None, timeout=5):
        pass    # released with the command
