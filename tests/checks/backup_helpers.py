"""Shared bits of the backup tests: a local shell for backup.catalogue and a profile of only backup rules.

LocalShell is not a fake of the host: the same commands backup.catalogue sends over SSH run here with
/bin/sh, against a directory tree (the `root` prefix) holding real restic/borg repositories and files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "baselines/profiles/tcm-2024-l3/rules/backup.yaml"


def local_shell(command: str, timeout: float = 20.0) -> tuple[int, str, bool]:
    p = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, False


def backup_profile(tmp: Path) -> Path:
    """A profile holding only rules/backup.yaml (so other families' work in progress cannot break ours)."""
    d = tmp / "profile"
    (d / "rules").mkdir(parents=True, exist_ok=True)
    shutil.copy(RULES, d / "rules" / "backup.yaml")
    (d / "profile.yaml").write_text("id: backup-test\nversion: '1'\ntitle: {zh: 备份, en: backup}\n"
                                   "rule_files: ['rules/*.yaml']\nparams: {level: 3}\n")
    return d / "profile.yaml"
