"""Shared fixtures. The lab fixture reuses a running lab and leaves it running; it brings the lab up (and
down again at the end) only when it was not running. TCMSCAN_LAB_KEEP=1 keeps a lab it started.
One session fixture for the whole suite, checked and started under the lab lock."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


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


@pytest.fixture(scope="session")
def lab_session() -> Iterator[dict[str, Any]]:
    reason = _lab_possible()
    if reason:
        pytest.skip(reason)
    from lab import manager

    # Under the lab lock: another engineer's `lab up` in progress is not mistaken for "not running".
    with manager.lock(progress=lambda _m: None):
        already = bool(manager.status()["running"])
        session = {"already": already, "status": manager.up(progress=lambda _m: None)}
    yield session
    if not leave_running(already):
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
