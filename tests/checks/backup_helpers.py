"""Shared bits of the backup tests: a local shell for backup.catalogue and a profile of only backup rules.

LocalShell is not a fake of the host: the same commands backup.catalogue sends over SSH run here with
/bin/sh, against a directory tree (the `root` prefix) holding real restic/borg repositories and files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def local_shell(command: str, timeout: float = 20.0) -> tuple[int, str, bool]:
    p = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, False


def backup_profile(tmp: Path) -> Path:
    """A profile with only the backup rules switched on: the built-in one, every other rule disabled (so its
    clause citations come from the built-in framework files, as in a real scan)."""
    from scanner.assess.baseline import load_profile

    d = tmp / "profile"
    d.mkdir(parents=True, exist_ok=True)
    others = sorted(r.id for r in load_profile().rules if not r.id.startswith("backup."))
    doc = {"id": "backup-test", "version": "1", "title": {"zh": "备份", "en": "backup"}, "inherits": "tcm-2024-l3",
           "overrides": {rid: {"enabled": False} for rid in others}}
    (d / "profile.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return d / "profile.yaml"
