"""Shared fixtures. The lab fixture reuses a running lab and leaves it running; it brings the lab up (and
down again at the end) only when it was not running. TCMSCAN_LAB_KEEP=1 keeps a lab it started.
One session fixture for the whole suite, checked and started under the lab lock. It records which `lab up`
made the lab it uses (`lab_identity`): the session, and tests/lab/test_zz_teardown.py, take down only that
lab -- never one that was up before the session, nor one someone else brought up meanwhile.

Under CI (CI=true) a skip is a failure: a test that cannot run its real parts there (a tool not installed,
not root) would otherwise silently remove a whole area of the suite. Locally a skip stays a skip."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def under_ci() -> bool:
    """CI=true (as CI services set it; 1 and yes count too)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _skip_reason(longrepr: Any) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and under_ci() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {_skip_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped at import (pytest.importorskip, skip(allow_module_level=True)) fails too."""
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


def _lab_possible() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    for tool in ("ip", "unshare", "nsenter", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def leave_running(already: bool) -> bool:
    """Leave the lab up after the session? (it was up before, or TCMSCAN_LAB_KEEP=1)"""
    return already or os.environ.get("TCMSCAN_LAB_KEEP") == "1"


def lab_identity() -> tuple[tuple[str, int], ...]:
    """Which `lab up` made the lab recorded now: its hosts' unshare PIDs, new on every `up` (from the lab's
    state file); () when no lab is recorded."""
    from lab import manager

    try:
        hosts = json.loads((manager.load().state_dir / "state.json").read_text())["hosts"]
    except (OSError, ValueError, KeyError):
        return ()
    return tuple(sorted((name, int(rec["unshare_pid"])) for name, rec in hosts.items() if "unshare_pid" in rec))


@pytest.fixture(scope="session")
def lab_session() -> Iterator[dict[str, Any]]:
    """{"already": the lab was up before the session, "status": `lab status`, "identity": lab_identity() of the
    lab this session uses, "claim": the session's claim on the lab (an ExitStack; closing it lets `lab down`
    go on)}; a test that brings up a lab of its own in its place updates "identity"."""
    reason = _lab_possible()
    if reason:
        pytest.skip(reason)
    from lab import manager

    # A claim for the whole session: another session's `lab down` waits until every test here that sends packets
    # to the lab subnet is done (once the lab is gone, that subnet follows the default route out of the machine).
    claim = contextlib.ExitStack()
    claim.enter_context(manager.in_use(progress=lambda _m: None))
    # Under the lab lock: another engineer's `lab up` in progress is not mistaken for "not running".
    with manager.lock(progress=lambda _m: None):
        already = bool(manager.status()["running"])
        session = {"already": already, "status": manager.up(progress=lambda _m: None), "identity": lab_identity(),
                   "claim": claim}
    yield session
    claim.close()
    if not leave_running(already) and lab_identity() == session["identity"]:
        # The claims first, then the lock (manager.down's order); `down` waits for other sessions' claims.
        with manager.no_users(progress=lambda _m: None), manager.lock(progress=lambda _m: None):
            if lab_identity() == session["identity"]:   # still the lab we brought up: ours to take down
                manager.down(progress=lambda _m: None)


@pytest.fixture(scope="session")
def lab(lab_session: dict[str, Any]) -> dict[str, Any]:
    return lab_session["status"]


@pytest.fixture
def lab_host(lab):
    """lab_host('his') -> address."""
    by_name = {h["name"]: h["address"] for h in lab["hosts"]}
    return by_name.__getitem__


def pytest_collection_modifyitems(session, config, items):
    """Tests that take the lab down (tests/lab/test_zz_teardown.py) run after everything that uses it."""
    items.sort(key=lambda item: "test_zz_teardown" in item.nodeid)
