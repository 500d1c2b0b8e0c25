"""The state file: every id `lab up` created, so `lab down` removes exactly those."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class State:
    """Recorded ids: bridge, per-host netns/veth/unshare PID/mount point, runtime dirs.

    Saved after every change, so a crash half-way through `up` still leaves a record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"bridge": None, "hosts": {}, "root": None}
        if path.exists():
            try:
                self.data = json.loads(path.read_text())
            except (OSError, ValueError):
                pass  # unreadable: `down` still scans for our prefixed names

    @property
    def hosts(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("hosts", {})

    def host(self, name: str) -> dict[str, Any]:
        return self.hosts.setdefault(name, {})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
