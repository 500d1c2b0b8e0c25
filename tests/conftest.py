"""Shared fixtures. The lab fixture reuses a running lab and leaves it running; it brings the lab up (and
down again at the end) only when it was not running. TCMSCAN_LAB_KEEP=1 keeps a lab it started."""

from __future__ import annotations

import os
import shutil

import pytest


def _lab_running() -> dict | None:
    try:
        from lab import manager
    except ImportError:
        return None
    try:
        st = manager.status()
    except Exception:
        return None
    return st if st.get("hosts") and st.get("running", True) else None


@pytest.fixture(scope="session")
def lab():
    """The lab's status dict: subnet, bridge, inventory, credentials, hosts."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("the lab needs root and iproute2")
    st = _lab_running()
    started = False
    if st is None:
        from lab import manager

        manager.up(progress=lambda *_a, **_k: None)
        st = manager.status()
        started = True
    yield st
    if started and not os.environ.get("TCMSCAN_LAB_KEEP"):
        from lab import manager

        manager.down()


@pytest.fixture
def lab_host(lab):
    """lab_host('his') -> address."""
    by_name = {h["name"]: h["address"] for h in lab["hosts"]}
    return by_name.__getitem__


def pytest_collection_modifyitems(session, config, items):
    """Tests that take the lab down (tests/lab/test_zz_teardown.py) run after everything that uses it."""
    items.sort(key=lambda item: "test_zz_teardown" in item.nodeid)
